"""Presentation: renderers that read one immutable `Report` and never probe.

Place in the pipeline: acquisition (probes) -> evaluation (checks -> `Result`s) -> the result
model (`xivo_doctor.foundation.results`) -> **presentation** (this package).

- `terminal`: the rich terminal output (results, what to fix, the verdict line).
- `progress`: the live progress bar while checks run (silent when not on a terminal).
- `json_report`: the `xivo-doctor/1` JSON document (schema in `xivo_doctor/result-schema.json`).
- `junit`: JUnit XML for CI systems.
- `html` (with `html_model`, the view model, `picture`, the topology picture's geometry, and the
  jinja2 templates under `templates/`): the self-contained HTML report for a support ticket.
- `readback`: reads a saved report (the JSON an HTML report embeds) back into a `Report`.

Redaction happened before any of them runs (`xivo_doctor.foundation.redact`, applied by `Run`).

Every renderer treats text from results as data: it came from inspected systems, so it is never
interpreted as markup and is escaped for the output format.
"""
