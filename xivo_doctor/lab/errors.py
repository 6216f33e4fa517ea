"""The lab's one error: what it cannot do, said in one line (the CLI turns it into exit 3).

Place in the lab: the bottom; `state` re-exports it for the modules that import it from there.
"""


class LabError(Exception):
    """The lab cannot do what was asked; the message says why and what to do."""
