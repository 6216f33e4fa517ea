"""Hostile and broken topology files, through the real CLI: one clear line and exit 3, never a traceback.

Place: tests of acquisition (the topology loader) as the admin meets it. The committed corpus is
tests/data/bad-topologies/ with each file's expected key and message in EXPECTED.json; the cases
that are huge, binary or not files at all (a FIFO, a dangling symlink, /proc/self/mem...) are made
here. Every case runs `xivo-doctor run -T FILE` and `xivo-doctor nagios -T FILE` as subprocesses
under a memory limit (the anchor bombs and the 10 MB file must not blow up) and a wall-clock
guard (the FIFO must not block).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from services import starts_services

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "bad-topologies"
EXPECTED = json.loads((CORPUS / "EXPECTED.json").read_text())
MEMORY_LIMIT = 768 * 1024 * 1024  # address space of the child: far above a healthy run, far below a bomb
GUARD_S = 20  # a hang guard, not a speed assert: a blocked open() would never return

TWO = "xivos:\n  - name: xivo-1\n    address: 192.168.1.124\n  - name: xivo-2\n    address: 192.168.1.125\n"

# Runs the CLI with its address space capped, so a bomb ends in MemoryError (a visible failure)
# instead of swapping the machine.
_LIMITED = (
    "import resource, runpy, sys; "
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT})); "
    "sys.argv[0] = 'xivo-doctor'; runpy.run_module('xivo_doctor', run_name='__main__', alter_sys=True)"
)


@dataclass(frozen=True)
class Generated:
    make: Callable[[Path], Path]  # builds the case under a directory, returns the path to pass to -T
    key: str  # "-" when the message names no key
    expect: str


def _write(name: str, data: bytes | str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p
    return make


def _fifo(d: Path) -> Path:
    p = d / "topology-fifo.yml"
    os.mkfifo(p)  # nobody ever writes: opening it for reading would block forever
    return p


def _dangling(d: Path) -> Path:
    p = d / "dangling.yml"
    p.symlink_to(d / "deleted-topology.yml")
    return p


def _loop(d: Path) -> Path:
    p = d / "loop.yml"
    p.symlink_to(p)
    return p


def _directory(d: Path) -> Path:
    p = d / "conf.d"
    p.mkdir()
    return p


def _with_secret(name: str, make_secret: Callable[[Path], None]) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        make_secret(d / "confd.secret")
        p = d / name
        p.write_text(TWO.replace("    address: 192.168.1.124\n",
                                 "    address: 192.168.1.124\n    confd: {password_file: confd.secret}\n", 1))
        return p
    return make


def _deep_block(d: Path) -> Path:
    # 10k levels in block style would be 50 MB of indentation; nested flow lists are the compact form.
    p = d / "deep-block-and-flow.yml"
    p.write_text("xivos:\n  - name:\n" + "      - " + "[" * 10_000 + "]" * 10_000 + "\n")
    return p


def _laughs(levels: int) -> str:
    """Each level ten aliases of the one below: 10**levels strings of 3000 characters once expanded."""
    lines = [f'l0: &l0 ["{"lol" * 1000}"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"xivos: *l{levels - 1}", ""])


GENERATED: dict[str, Generated] = {
    "empty": Generated(_write("empty.yml", b""), "-", "the file is empty"),
    "huge-10mb": Generated(_write("huge.yml", TWO + "# padding\n" * 1_000_000), "-", "larger than 1 MiB"),
    "name-100k": Generated(_write("long-name.yml", TWO.replace("xivo-1", "x" * 100_000, 1)), "xivos[0].name",
                           "... (100000 characters) is not a valid XiVO name"),
    # PyYAML refuses a plain key over 1024 characters itself; a shorter long one reaches the loader.
    "key-100k": Generated(_write("long-key.yml", TWO + "k" * 100_000 + ": 1\n"), "-",
                          "YAML syntax error: could not find expected ':'"),
    "key-1000": Generated(_write("long-key.yml", TWO + "k" * 1000 + ": 1\n"), "-",
                          "... (1000 characters); topology keys are short words"),
    "int-5000-digits": Generated(_write("big-int.yml", TWO.replace("192.168.1.124", "192.168.1.124\n    ctid: {port: "
                                                                   + "9" * 5000 + "}", 1)),
                                 "xivos[0].ctid.port", "expected an integer from 1 to 65535, got '999"),
    "nested-10k-lists": Generated(_write("deep-list.yml", "xivos: " + "[" * 10_000 + "]" * 10_000 + "\n"), "-",
                                  "nested too deeply"),
    "nested-10k-maps": Generated(_write("deep-map.yml", "xivos: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n"),
                                 "-", "nested too deeply"),
    "nested-in-block": Generated(_deep_block, "-", "nested too deeply"),
    "billion-laughs-big": Generated(_write("lol.yml", _laughs(30)), "-",
                                    "YAML anchors and aliases (&/*) are not supported"),
    "latin-1": Generated(_write("latin1.yml", "name: Si\u00e8ge\n".encode("latin-1") + TWO.encode()), "-",
                         ":1: not UTF-8 text (byte 0xe8); save the file as UTF-8"),
    "utf-16": Generated(_write("utf16.yml", TWO.encode("utf-16")), "-", "the file is UTF-16 text; save it as UTF-8"),
    "utf-16-be": Generated(_write("utf16be.yml", b"\xfe\xff" + TWO.encode("utf-16-be")), "-", "UTF-16"),
    "bom-then-error": Generated(_write("bom.yml", b"\xef\xbb\xbf" + TWO.encode() + b"probe_timeout: soon\n"),
                                "probe_timeout", ":6: probe_timeout: expected a number of seconds"),
    "binary-garbage": Generated(_write("garbage.yml", random.Random(7).randbytes(4096)), "-", "not UTF-8 text"),
    "nul-bytes": Generated(_write("nul.yml", TWO.encode() + b"\x00" * 64), "-", "control character U+0000"),
    "gzip": Generated(_write("topology.yml.gz", gzip.compress(TWO.encode())), "-", "not UTF-8 text (byte 0x8b)"),
    "directory": Generated(_directory, "-", "is a directory; pass the topology file itself"),
    "fifo": Generated(_fifo, "-", "is not a regular file"),
    "device": Generated(lambda d: Path("/dev/zero"), "-", "is not a regular file"),
    "proc-self-mem": Generated(lambda d: Path("/proc/self/mem"), "-", "cannot read the file: Input/output error"),
    "dangling-symlink": Generated(_dangling, "-", "deleted-topology.yml, which does not exist"),
    "symlink-loop": Generated(_loop, "-", "Too many levels of symbolic links"),
    "under-a-file": Generated(lambda d: Path(__file__) / "topology.yml", "-", "cannot read the file: Not a directory"),
    "missing": Generated(lambda d: d / "nope.yml", "-", "file not found"),
    "secret-huge": Generated(_with_secret("secret-huge.yml", lambda p: p.write_bytes(b"x" * 1_000_000)),
                             "xivos[0].confd.password_file", "(larger than 64 KiB, not a secret)"),
    "secret-fifo": Generated(_with_secret("secret-fifo.yml", os.mkfifo), "xivos[0].confd.password_file",
                             "(not a regular file)"),
    "secret-not-utf8": Generated(_with_secret("secret-latin1.yml", lambda p: p.write_bytes(b"mot de passe \xe9")),
                                 "xivos[0].confd.password_file", "(not UTF-8 text)"),
}


Outcome = tuple[Path, subprocess.CompletedProcess[str]]  # the path passed to -T, what the CLI did


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIVO_DOCTOR_CORPUS")}
    return subprocess.run([sys.executable, "-c", _LIMITED, *args], capture_output=True, text=True,
                          errors="replace", timeout=GUARD_S, cwd=REPO, env=env)


@pytest.fixture(scope="module")
@starts_services
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Outcome]:
    """Every case through both commands, run side by side (each is a fresh interpreter)."""
    base = tmp_path_factory.mktemp("bad-topologies")
    files = {name: CORPUS / name for name in EXPECTED}
    for name, case in GENERATED.items():
        d = base / name
        d.mkdir()
        files[name] = case.make(d)
    jobs = [(name, command) for name in files for command in ("run", "nagios")]
    with ThreadPoolExecutor(max_workers=4) as pool:
        procs = pool.map(lambda job: _run([job[1], "-T", str(files[job[0]])]), jobs)
        return {job: (files[job[0]], proc) for job, proc in zip(jobs, procs, strict=True)}


def _expected(name: str) -> tuple[str, str]:
    if name in EXPECTED:
        return EXPECTED[name]["key"], EXPECTED[name]["expect"]
    return GENERATED[name].key, GENERATED[name].expect


CASES = sorted(EXPECTED) + sorted(GENERATED)


def test_the_corpus_is_big_enough() -> None:
    assert len(EXPECTED) >= 30
    assert sorted(p.name for p in CORPUS.iterdir() if p.name != "EXPECTED.json") == sorted(EXPECTED)


@pytest.mark.parametrize("name", CASES)
def test_run_says_one_clear_line_and_exits_3(outcomes, name: str) -> None:
    file, proc = outcomes[name, "run"]
    key, expect = _expected(name)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[:2000]
    line = lines[0]
    assert line.startswith(f"xivo-doctor: error: {file}"), line[:300]
    assert "Traceback" not in proc.stderr and "internal error" not in line
    assert len(line) < 600, f"{len(line)} characters"
    if key != "-":
        assert f": {key}: " in line, line
    assert expect in line
    assert proc.stdout == ""


@pytest.mark.parametrize("name", CASES)
def test_nagios_says_unknown_in_one_line(outcomes, name: str) -> None:
    file, proc = outcomes[name, "nagios"]
    _, expect = _expected(name)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout[:2000]
    assert lines[0].startswith(f"XIVO-DOCTOR UNKNOWN - {file}"), lines[0][:300]
    assert expect in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_token_value_is_never_echoed(outcomes) -> None:
    _, proc = outcomes["token-number.yml", "run"]
    assert "1234567890" not in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_unreadable_file_as_another_user(tmp_path: Path) -> None:
    """chmod 000 means nothing to root: the loader is run as `nobody` to meet EACCES for real."""
    d = tmp_path / "private"
    d.mkdir()
    (d / "topology.yml").write_text(TWO)
    (d / "topology.yml").chmod(0)
    tmp_path.chmod(0o755)
    probe = ("import sys; from xivo_doctor.foundation.errors import TopologyError; "
             "from xivo_doctor.topology import load_topology\n"
             "try:\n    load_topology(sys.argv[1])\nexcept TopologyError as e:\n    print(e)\n")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", probe, str(d / "topology.yml")],
                          capture_output=True, text=True, timeout=GUARD_S, cwd="/",
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stderr == ""
    assert proc.stdout == (f"{d / 'topology.yml'}: cannot read the file: Permission denied; "
                           "check its path and permissions\n")


def test_messages_about_secret_keys_keep_their_first_word(outcomes) -> None:
    _, proc = outcomes["token-number.yml", "run"]
    assert "xivos[0].consul.token: expected a string, got an int" in proc.stderr
