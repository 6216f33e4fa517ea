"""The self-contained HTML report for support tickets, built from a `Report`.

Place in the pipeline: presentation: reads the (already redacted) Report, never probes.

`html_model.py` builds the view model (plain values); all markup lives in `templates/`, rendered by
jinja2 with autoescape on for everything: every string in a Report came from inspected systems or
the topology and may be hostile, and reaches the page as escaped text only. The single exception
is the embedded result JSON (`embedded_json`): a `<script>` element's content cannot be
HTML-escaped, so it is made inert here instead.

The page makes no request: CSS inline, SVG inline, no script that runs, a `data:` favicon, and a
CSP that forbids everything else, so it opens from disk, offline, and prints to PDF.
"""

from __future__ import annotations

import functools
import json

import jinja2
from markupsafe import Markup

from xivo_doctor.foundation.results import Report
from xivo_doctor.render.html.model import page_model
from xivo_doctor.render.json_report import report_to_dict
from xivo_doctor.render.output_file import write_output

# Characters that could end or confuse a <script> element's content, and the JSON escapes that
# mean the same characters inside a JSON string (HTML spec "restrictions for contents of script
# elements"; U+2028/2029 for consumers that eval the text as JavaScript).
_SCRIPT_UNSAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                                "\u2028": "\\u2028", "\u2029": "\\u2029"})


def embedded_json(report: Report) -> Markup:
    """`report_to_dict(report)` as JSON safe inside `<script type="application/json">`.

    Autoescape cannot protect a script element (its content is not HTML-decoded), so `<`, `>`,
    `&`, U+2028 and U+2029 are written as JSON `\\uXXXX` escapes, which parse back to the same
    characters: no `</script>` or `<!--` can appear. Only then is the text marked safe.
    """
    text = json.dumps(report_to_dict(report), ensure_ascii=False, separators=(",", ":"), default=str)
    return Markup(text.translate(_SCRIPT_UNSAFE))  # safe: no '<', '>' or '&' is left in it


def code_spans(text: str) -> list[tuple[bool, str]]:
    """The checks' texts quote names in backticks (`xivo`): (is_code, part) pairs for the `prose`
    macro, which shows code parts in <code>. Data only: the template escapes every part."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: the text as it is
        return [(False, text)]
    return [(i % 2 == 1, part) for i, part in enumerate(parts) if part]


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("xivo_doctor.render.html", "templates"),
        autoescape=True,  # everything, whatever the template's name: hostile text stays text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["code_spans"] = code_spans
    return env


def render_html(report: Report) -> str:
    """The whole page, one self-contained HTML document."""
    result_json = embedded_json(report)
    model = page_model(report, json_size=len(result_json))
    return _environment().get_template("report.html.j2").render(**model, result_json=result_json)


def write_html(report: Report, dest: str) -> None:
    """Write the page to `dest` (`-`: standard output), atomically (render/output_file.py)."""
    write_output(dest, render_html(report))
