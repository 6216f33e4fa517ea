"""Presentation: renderers that read one immutable `Report` and never probe.

Place in the pipeline: acquisition (probes) -> evaluation (checks -> `Result`s) -> the result
model (`xivo_doctor.results`) -> **presentation** (this package).

- `terminal`: the rich terminal output (results, what to fix, the verdict line).
- `progress`: the live progress bar while checks run (silent when not on a terminal).
- `json_report`: the `xivo-doctor/1` JSON document (schema in `xivo_doctor/result-schema.json`).
- `junit`: JUnit XML for CI systems.

Every renderer treats text from results as data: it came from inspected systems, so it is never
interpreted as markup and is escaped for the output format.
"""
