"""The checks: one file per concern, one `@check`-decorated `test_*` function per check.

Each function evaluates what the `probes` fixture acquired and asserts; its id, title, why,
fix, doc reference, severity and dependencies are declared beside it. The engine finds new
files here by itself (README: Adding a check).
"""
