"""Transports: bounded HTTP, TCP connects, TLS contexts, the memo of dead endpoints.
"""
