"""The command line: one module per command, the options they share, and the one place that
turns errors into messages and exit codes.
"""
