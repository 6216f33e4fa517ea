"""xivo-doctor: verifies a live interconnection of XiVO servers and says what to fix.

Pipeline: topology (what should be) -> probes (acquisition) -> checks under `checks/`
(evaluation, run by the pytest plugin) -> results (one immutable model) -> renderers
(presentation). The CLI is the only place that turns errors into messages and exit codes.
"""

__version__ = "0.1.0"
