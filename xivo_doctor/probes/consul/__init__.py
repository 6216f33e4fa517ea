"""Consul's HTTP API as the probes read it: the agent, answer shapes, views.
"""
