"""The engine: one run of the checks (its set-up, options and state), the pytest plugin that
drives it, check discovery, classification, blocking, the warm-up scheduler, history, lock.
"""
