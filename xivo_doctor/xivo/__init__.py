"""What the checks and probes know of XiVO itself: versions and directory URIs.
"""
