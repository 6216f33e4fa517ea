"""The Nagios/Icinga plugin's output and the guidelines' threshold ranges.
"""
