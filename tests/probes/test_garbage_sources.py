"""Data sources answering garbage: each becomes a `ProbeError` naming the source, never a crash.

Place: tests of acquisition. A real HTTP server on 127.10.180.x stands in for xivo-ctid's
`/0.1/infos`; a real script given as `on_box.rabbitmqctl` prints what the parser has never seen;
and the Erlang-term parser behind `rabbit_federation_status:status()` is fuzzed (hypothesis) with
generated terms and mutations of the outputs of LAB-NOTES §A.5: each input parses or raises
`ParseError`, and a per-example deadline catches a parse that is worse than linear.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from services import starts_services
from status_text import parse_status

from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.probes import Probes
from xivo_doctor.probes.rabbitmq import federation_status as fs
from xivo_doctor.topology import load_topology

ADDRESS = "127.10.180.1"
PEER = "127.10.180.2"
CTID_PORT = 19495

# LAB-NOTES §A.5: a running link, a link in error, the plugin off.
REAL = [
    '[[{exchange,<<"xivo">>},{upstream_exchange,<<"xivo">>},{type,exchange},{vhost,<<"/">>},'
    '{upstream,<<"xivo-dev-2">>},{id,<<"97f0b7a0">>},{status,running},'
    '{local_connection,<<"<rabbit-b@localhost.1795593458.941.0>">>},{uri,<<"amqp://127.0.1.1">>},'
    '{timestamp,{{2026,11,25},{7,58,18}}}]]\n',
    '[[{exchange,<<"xivo">>},{upstream,<<"xivo-dev-2">>},{status,error},'
    '{error,{auth_failure,"ACCESS_REFUSED - Login was refused"}},{uri,<<"amqp://xivo:pw@10.0.0.2">>},'
    '{timestamp,{{2026,11,25},{7,58,18}}}]]\n',
    "Error:\n{:noproc, {:gen_server, :call, [:rabbit_federation_status, :status, :infinity]}}\n",
    "[]\n",
]

# -- the status parser, fuzzed --------------------------------------------------------------------

_atoms = st.sampled_from(["running", "error", "status", "upstream", "'EXIT'", "noproc", "undefined", "x@y"])
_scalars = st.one_of(
    _atoms, st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.text(max_size=12).map(lambda s: '<<"' + s.replace("\\", "\\\\").replace('"', '\\"') + '">>'),
    st.lists(st.integers(0, 300), max_size=5).map(lambda b: "<<" + ",".join(map(str, b)) + ">>"),
    st.just("<0.123.0>"), st.just(r'"\x{110000}"'), st.just("9" * 5000),
)
_terms = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.lists(inner, max_size=4).map(lambda xs: "{" + ",".join(xs) + "}"),
    st.lists(st.tuples(inner, inner), max_size=3).map(lambda kv: "#{" + ",".join(f"{k} => {v}" for k, v in kv) + "}"),
), max_leaves=30)


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(REAL))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 20)))
        op = draw(st.sampled_from(["cut", "delete", "insert", "duplicate"]))
        if op == "cut":
            text = text[:i]
        elif op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.text(alphabet="[]{},<>\"'#=/\\ 0123456789abcdefxEXIT\n\xe9\x00", max_size=8)) \
                + text[i:]
        else:
            text = text[:j] + text[i:j] * draw(st.integers(1, 50)) + text[j:]
    return text


def _parse_or_parse_error(text: str) -> None:
    try:
        links = parse_status(text)
    except fs.ParseError:
        return
    assert links is None or all(isinstance(link["status"], str) for link in links)


FUZZ = settings(max_examples=1500, deadline=500, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(_terms)
def test_generated_terms_parse_or_raise_parse_error(text: str) -> None:
    _parse_or_parse_error(text)


@FUZZ
@given(_mutated())
def test_mutated_real_outputs_parse_or_raise_parse_error(text: str) -> None:
    _parse_or_parse_error(text)


@settings(max_examples=500, deadline=500)
@given(st.text(max_size=400))
def test_any_text_parses_or_raises_parse_error(text: str) -> None:
    _parse_or_parse_error(text)


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,  # recursion
    "undef" * 200_000,  # the plugin-off regex rescanning from every "undef"
    "{" * 50_000,
    '"' + "\\" * 100_000,
    "<<" + "1," * 100_000 + "1>>",
], ids=["deep-lists", "many-undef", "unclosed-tuples", "unclosed-string", "long-binary"])
def test_pathological_outputs(text: str) -> None:
    _parse_or_parse_error(text)


# -- a real rabbitmqctl stand-in printing garbage ------------------------------------------------

def _topology(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "topology.yml"
    path.write_text(f"probe_timeout: 3\nxivos:\n  - name: xivo-1\n    address: {ADDRESS}\n"
                    f"    ctid: {{port: {CTID_PORT}}}\n{extra}"
                    f"  - name: xivo-2\n    address: {PEER}\n")
    return path


FAKE_OUTPUTS = {
    "garbage": "printf 'hello world\\n'",
    "partial-term": "printf '[[{exchange,<<\"xivo\">>},{upstream,'",
    "huge": "head -c 20000000 /dev/zero | tr '\\0' '['",
    "non-utf8": "printf '[[{upstream,<<\"\\351\\377\">>}]]\\n'",
    "exit-70": "echo 'Error: unable to perform an operation on node rabbit@xivo-1' >&2; exit 70",
    "html": "printf '<html><body>500</body></html>\\n'",
}


@pytest.mark.parametrize("name", sorted(FAKE_OUTPUTS))
def test_rabbitmqctl_garbage_is_a_probe_error(tmp_path: Path, name: str) -> None:
    script = tmp_path / "rabbitmqctl"
    script.write_text(f"#!/bin/sh\n{FAKE_OUTPUTS[name]}\n")
    script.chmod(0o755)
    probes = Probes(load_topology(_topology(tmp_path, f"    on_box: {{rabbitmqctl: [{script}]}}\n")), Deadline(20))
    xivo = probes.topology.xivos[0]
    with pytest.raises(ProbeError) as caught:
        probes.rabbitmq.federation_links(xivo)
    assert caught.value.source and "rabbitmqctl" in str(caught.value)
    assert "\n" not in str(caught.value)


# -- xivo-ctid's /0.1/infos answering garbage -----------------------------------------------------

CTID_ANSWERS = {
    "html": (200, "text/html", b"<html><body><h1>It works!</h1></body></html>"),
    "uuid-42": (200, "application/json", b'{"uuid": 42}'),
    "uuid-empty": (200, "application/json", b'{"uuid": ""}'),
    "list": (200, "application/json", b'["uuid"]'),
    "null": (200, "application/json", b"null"),
    "truncated": (200, "application/json", b'{"uuid": "4f2d'),
    "http-500": (500, "text/html", b"<h1>Internal Server Error</h1>"),
    "http-404": (404, "text/plain", b"not found"),
}


@pytest.fixture
@starts_services
def ctid_answer() -> Iterator[list[tuple[int, str, bytes]]]:
    answer: list[tuple[int, str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, kind, body = answer[0]
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((ADDRESS, CTID_PORT), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield answer
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", sorted(CTID_ANSWERS))
def test_ctid_garbage_is_a_probe_error(tmp_path: Path, ctid_answer, name: str) -> None:
    ctid_answer.append(CTID_ANSWERS[name])
    probes = Probes(load_topology(_topology(tmp_path, "")), Deadline(10))
    with pytest.raises(ProbeError) as caught:
        probes.ctid.infos(probes.topology.xivos[0])
    assert "xivo-ctid REST API of xivo-1" in str(caught.value)
    assert "\n" not in str(caught.value)
