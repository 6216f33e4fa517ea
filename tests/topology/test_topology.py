"""Topology file: valid loads, and the exact one-line message for each invalid input."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from xivo_doctor.foundation.errors import TopologyError
from xivo_doctor.topology import OnBoxAccess, RabbitMQManagement, Secret, find_topology, load_topology

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

TWO = """\
xivos:
  - name: xivo-1
    address: 192.168.1.124
  - name: xivo-2
    address: 192.168.1.125
"""
SYNTAX_HINT = "check the indentation and quote values that contain ': ' or '#'"


def write(tmp_path: Path, text: str, name: str = "topology.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def error_of(path: str | Path) -> str:
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    return str(info.value)


# (id, YAML text, expected message with {f} standing for the file's path)
ERROR_CASES = [
    ("empty", "", "{f}: the file is empty; start from examples/minimal.yml"),
    ("only-comments", "# nothing yet\n\n", "{f}: the file is empty; start from examples/minimal.yml"),
    ("top-level-list", "- xivo-1\n- xivo-2\n",
     "{f}:1: the top level must be a mapping (name:, defaults:, xivos:, federation:), got a list; "
     "start from examples/minimal.yml"),
    ("yaml-syntax", "name: a: b\n" + TWO,
     f"{{f}}:1: YAML syntax error: mapping values are not allowed here (column 8); {SYNTAX_HINT}"),
    ("yaml-tab", TWO + "\tfederation: full-mesh\n",
     "{f}:6: YAML syntax error: a tab character (column 1); YAML indents with spaces only: "
     "replace tabs with spaces"),
    ("yaml-unclosed", "xivos: [\n",
     f"{{f}}:2: YAML syntax error: expected the node content, but found '<stream end>' (column 1); "
     f"{SYNTAX_HINT}"),
    ("duplicate-key", TWO + "    address: 192.168.1.126\n",
     "{f}:6: xivos[1].address: key 'address' appears twice (first at line 5); keep one"),
    ("unknown-key-close", TWO.replace("address: 192.168.1.125", "adress: 192.168.1.125"),
     "{f}:5: xivos[1].adress: unknown key; did you mean 'address'?"),
    ("unknown-key-far", "zzz: 1\n" + TWO,
     "{f}:1: zzz: unknown key; allowed keys: name, probe_timeout, defaults, xivos, federation"),
    ("unknown-section", TWO + "    rabbitm: {port: 5672}\n",
     "{f}:6: xivos[1].rabbitm: unknown key; did you mean 'rabbitmq'?"),
    ("port-str", "defaults:\n  rabbitmq: {port: five}\n" + TWO,
     "{f}:2: defaults.rabbitmq.port: expected an integer from 1 to 65535, got 'five' (str); "
     "write e.g. port: 5672"),
    ("port-range", TWO + "    consul:\n      port: 70000\n",
     "{f}:7: xivos[1].consul.port: expected an integer from 1 to 65535, got 70000 (int); "
     "write e.g. port: 8500"),
    ("port-bool", TWO + "    ctid: {port: true}\n",
     "{f}:6: xivos[1].ctid.port: expected an integer from 1 to 65535, got true (bool); "
     "write e.g. port: 9495"),
    ("bool", "defaults:\n  webservices:\n    phonebook_sharing: yes please\n" + TWO,
     "{f}:3: defaults.webservices.phonebook_sharing: expected true or false, got 'yes please' (str); "
     "write e.g. phonebook_sharing: true"),
    ("scheme", "defaults:\n  consul: {scheme: ftp}\n" + TWO,
     "{f}:2: defaults.consul.scheme: expected http or https, got 'ftp' (str); write e.g. scheme: https"),
    ("section-not-mapping", "defaults:\n  consul: 8500\n" + TWO,
     "{f}:2: defaults.consul: expected a mapping of consul settings, got an int; "
     "write e.g. consul: {port: ...}"),
    ("xivos-str", "xivos: xivo-1, xivo-2\n",
     "{f}:1: xivos: expected a list of XiVOs (- name: ..., address: ...), got a str"),
    ("xivo-not-mapping", TWO + "  - xivo-3\n",
     "{f}:6: xivos[2]: expected a XiVO (name: ..., address: ...), got a str"),
    ("version-number", "defaults:\n  version: 16.10\n" + TWO,
     '{f}:2: defaults.version: 16.1 is read by YAML as a number; quote it: version: "16.10"'),
    ("version-bad", TWO + "    version: sixteen\n",
     """{f}:6: xivos[1].version: 'sixteen' is not a XiVO version; write e.g. version: "16.13\""""),
    ("missing-address", TWO.replace("    address: 192.168.1.125\n", "    version: '16.13'\n"),
     "{f}:4: xivos[1]: missing key 'address'; write address: <IP address or hostname of this XiVO, "
     "reachable from the others>"),
    ("missing-name", TWO.replace("  - name: xivo-2\n    address", "  - address"),
     "{f}:4: xivos[1]: missing key 'name'; write name: <a short name for this XiVO, e.g. xivo-1>"),
    ("bad-name", TWO.replace("xivo-2", "xivo 2"),
     "{f}:4: xivos[1].name: 'xivo 2' is not a valid XiVO name: use up to 63 letters, digits, '.', '_' "
     "or '-', starting with a letter or digit; write e.g. name: xivo-1"),
    ("bad-name-arrow", TWO.replace("xivo-2", "a->b"),
     "{f}:4: xivos[1].name: 'a->b' is not a valid XiVO name: use up to 63 letters, digits, '.', '_' "
     "or '-', starting with a letter or digit; write e.g. name: xivo-1"),
    ("bad-address", TWO.replace("192.168.1.125", "192.168.1.300"),
     "{f}:5: xivos[1].address: '192.168.1.300' is not an IPv4 address, an IPv6 address or a hostname; "
     "write e.g. address: 192.168.1.124"),
    ("address-with-port", TWO.replace("192.168.1.125", "'192.168.1.125:5672'"),
     "{f}:5: xivos[1].address: '192.168.1.125:5672' is not an IPv4 address, an IPv6 address or a "
     "hostname; write e.g. address: 192.168.1.124"),
    ("duplicate-name", TWO.replace("xivo-2", "xivo-1"),
     "{f}:4: xivos[1].name: 'xivo-1' is already the name of xivos[0] (line 2); "
     "give each XiVO its own name"),
    ("duplicate-address", TWO.replace("192.168.1.124", "PBX.example.com").replace(
        "192.168.1.125", "pbx.example.com"),
     "{f}:5: xivos[1].address: 'pbx.example.com' is already the address of xivos[0] (line 2); "
     "give each XiVO its own address"),
    ("one-xivo", "xivos:\n  - name: xivo-1\n    address: 192.168.1.124\n",
     "{f}:2: xivos: 1 XiVO declared; an interconnection needs at least two"),
    ("zero-xivos", "xivos: []\n", "{f}:1: xivos: 0 XiVOs declared; an interconnection needs at least two"),
    ("no-xivos", "name: office\n",
     "{f}:1: missing key 'xivos'; write xivos: with one item per XiVO (- name: ..., address: ...), "
     "at least two"),
    ("link-unknown", TWO + "federation:\n  links:\n    - {downstream: xivo-1, upstream: xivo-3}\n",
     "{f}:8: federation.links[0].upstream: 'xivo-3' is not a declared XiVO; write one of: xivo-1, xivo-2"),
    ("link-self", TWO + "federation:\n  links:\n    - {downstream: xivo-2, upstream: xivo-2}\n",
     "{f}:8: federation.links[0]: downstream and upstream are both 'xivo-2'; a XiVO does not federate "
     "with itself: name two different XiVOs"),
    ("link-duplicate", TWO + "federation:\n  links:\n    - {downstream: xivo-1, upstream: xivo-2}\n"
     "    - {downstream: xivo-2, upstream: xivo-1}\n    - {downstream: xivo-1, upstream: xivo-2}\n",
     "{f}:10: federation.links[2]: xivo-1->xivo-2 is already listed at federation.links[0] (line 8); "
     "keep one"),
    ("link-missing-end", TWO + "federation:\n  links:\n    - downstream: xivo-1\n",
     "{f}:8: federation.links[0]: missing key 'upstream'; write upstream: <name of the XiVO the "
     "messages come from>"),
    ("federation-word", TWO + "federation: mesh\n",
     "{f}:6: federation: expected full-mesh or links: [...], got 'mesh' (str); write federation: "
     "full-mesh, or federation: {links: [{downstream: xivo-1, upstream: xivo-2}]}"),
    ("env-unset", "defaults:\n  rabbitmq:\n    password: ${XD_TEST_UNSET}\n" + TWO,
     "{f}:3: defaults.rabbitmq.password: environment variable XD_TEST_UNSET is not set; "
     "export it before running, or write the value"),
    ("password-and-file", TWO + "    confd: {password: s3cret, password_file: confd.secret}\n",
     "{f}:6: xivos[1].confd.password_file: give either password or password_file, not both; keep one"),
    ("secret-file-missing", TWO + "    rabbitmq: {password_file: missing.secret}\n",
     "{f}:6: xivos[1].rabbitmq.password_file: cannot read {d}/missing.secret "
     "(No such file or directory); create it or fix the path"),
    ("secret-not-echoed", "defaults:\n  rabbitmq: {password: 123456789}\n" + TWO,
     """{f}:2: defaults.rabbitmq.password: expected a string, got an int; quote it, e.g. """
     """password: "${RABBITMQ_PASSWORD}\""""),
    ("verify-ca-missing", "defaults:\n  confd: {verify: certs/ca.pem}\n" + TWO,
     "{f}:2: defaults.confd.verify: CA file {d}/certs/ca.pem does not exist; fix the path, or write "
     "verify: false (no certificate check) or verify: true (the system's CAs)"),
    ("probe-timeout-zero", "probe_timeout: 0\n" + TWO,
     "{f}:1: probe_timeout: expected a number of seconds, more than 0 and at most 300, got 0 (int); "
     "write e.g. probe_timeout: 3"),
    ("probe-timeout-large", "probe_timeout: 300.5\n" + TWO,
     "{f}:1: probe_timeout: expected a number of seconds, more than 0 and at most 300, got 300.5 "
     "(float); write e.g. probe_timeout: 3"),
    ("rabbitmqctl-empty", TWO + "    on_box: {rabbitmqctl: []}\n",
     "{f}:6: xivos[1].on_box.rabbitmqctl: expected a command, got an empty one; "
     "write e.g. rabbitmqctl: [rabbitmqctl]"),
    ("source-address", TWO + "    on_box: {source_address: here}\n",
     "{f}:6: xivos[1].on_box.source_address: 'here' is not an IPv4 or IPv6 address; "
     "write e.g. source_address: 192.168.1.124"),
    ("alias", "defaults: &d\n  version: '16.13'\n" + TWO + "    <<: *d\n",
     "{f}:1: YAML anchors and aliases (&/*) are not supported in topology files; write the values out"),
    ("name-with-newline", TWO.replace("name: xivo-2", 'name: "xivo-2\\n"'),
     "{f}:4: xivos[1].name: 'xivo-2\\n' is not a valid XiVO name: use up to 63 letters, digits, '.', "
     "'_' or '-', starting with a letter or digit; write e.g. name: xivo-1"),
    ("defaults-list", "defaults: [consul]\n" + TWO,
     """{f}:1: defaults: expected a mapping of default settings, got a list; write e.g. """
     """defaults: {version: "16.13"}"""),
    ("key-not-scalar", "? [a, b]\n: c\n" + TWO,
     "{f}:1: a key must be a plain word, not a list or mapping; write key: value"),
    ("secret-file-is-dir", "defaults:\n  consul: {token_file: .}\n" + TWO,
     "{f}:2: defaults.consul.token_file: cannot read {d} (Is a directory); create it or fix the path"),
    ("yaml-tag", TWO + "    version: !!python/name:os.system ''\n",
     "{f}:6: xivos[1].version: YAML tag !!python/name:os.system is not supported in topology files; "
     "remove it"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str) -> None:
    monkeypatch.delenv("XD_TEST_UNSET", raising=False)
    path = write(tmp_path, text)
    assert error_of(path) == expected.replace("{f}", path).replace("{d}", str(tmp_path))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    assert error_of(path) == (f"{path}: file not found; write a topology file there "
                              "(see README: Topology file) or pass -T FILE")


def test_directory(tmp_path: Path) -> None:
    assert error_of(tmp_path) == (f"{tmp_path}: is a directory; pass the topology file itself, "
                                  f"e.g. -T {tmp_path}/topology.yml")


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, TWO)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # Tests run as root, which chmod 000 does not stop: simulate the refusal instead.
    monkeypatch.setattr(Path, "open", refuse)
    assert error_of(path) == f"{path}: cannot read the file: Permission denied; check its path and permissions"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(TWO.encode() + "name: bureau-é\n".encode("latin-1"))
    assert error_of(path) == f"{path}:6: not UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_bytes(b"# padding\n" * 110_000)
    assert error_of(path) == (f"{path}: the file is larger than 1 MiB; a topology file is a few KiB: "
                              "pass the right file")


def test_billion_laughs_fails_fast(tmp_path: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    start = time.monotonic()
    assert error_of(path) == (f"{path}:1: YAML anchors and aliases (&/*) are not supported in topology "
                              "files; write the values out")
    assert time.monotonic() - start < 2


def test_deep_nesting(tmp_path: Path) -> None:
    path = write(tmp_path, "xivos: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert error_of(path) == f"{path}: the YAML is nested too deeply; a topology file is at most 32 levels deep"


def test_fifo_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fifo.yml"
    os.mkfifo(path)
    assert error_of(path) == f"{path}: is not a regular file; pass the topology file (.yml) itself"


def test_relative_path_is_shown_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "xivos: []\n", name="xivo-doctor.yml")
    monkeypatch.chdir(tmp_path)
    assert error_of("xivo-doctor.yml") == (
        "xivo-doctor.yml:1: xivos: 0 XiVOs declared; an interconnection needs at least two")


# --- valid files --------------------------------------------------------------------------------


@pytest.fixture
def manual_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_TOKEN", "consul-master-token")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "amqp-password")
    monkeypatch.setenv("CONFD_PASSWORD", "confd-password")
    monkeypatch.setenv("XIVO_AUTH_PASSWORD", "auth-password")


def test_manual_example(manual_env: None) -> None:
    topo = load_topology(EXAMPLES / "manual-example.yml")
    assert topo.name == "manual-example"
    assert topo.source == EXAMPLES / "manual-example.yml"
    assert [(x.name, x.address, x.version) for x in topo.xivos] == [
        ("xivo-1", "192.168.1.124", "16.13"), ("xivo-2", "192.168.1.125", "16.13")]
    assert [p.id for p in topo.pairs] == ["xivo-1->xivo-2", "xivo-2->xivo-1"]
    assert topo.federation == "full-mesh"
    assert topo.probe_timeout == 3.0
    x1 = topo.xivo("xivo-1")
    assert x1.rabbitmq.password == Secret("amqp-password")
    assert x1.consul.token == Secret("consul-master-token")
    assert x1.confd.username == "xivo-doctor"
    assert x1.rabbitmq.management is None and x1.on_box is None
    assert (x1.auth.port, x1.auth.username, x1.auth.password, x1.dird.port) == (
        9497, "xivo-doctor", Secret("auth-password"), 9489)
    assert set(topo.secrets()) == {"consul-master-token", "amqp-password", "confd-password", "auth-password"}
    text = (EXAMPLES / "manual-example.yml").read_text()
    assert topo.lines == {"xivo-1": text.splitlines().index("  - name: xivo-1              "
                                                            "# letters, digits, '.', '_', '-'") + 1,
                          "xivo-2": text.splitlines().index("  - name: xivo-2") + 1}


def test_minimal_example() -> None:
    topo = load_topology(str(EXAMPLES / "minimal.yml"))
    assert topo.name == "minimal"
    assert topo.lines == {"xivo-1": 3, "xivo-2": 5}
    x = topo.xivos[0]
    assert (x.version, x.rabbitmq.port, x.rabbitmq.user, x.consul.scheme, x.ctid.port) == (
        None, 5672, "xivo", "https", 9495)
    assert topo.secrets() == ()


def test_defaults_merge_and_override(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("CA")
    path = write(tmp_path, """\
        name: offices
        probe_timeout: 1.5
        defaults:
          version: "16.13"
          rabbitmq: {user: doctor, password: amqp, management: {port: 15673}}
          consul: {verify: ca.pem}
          on_box: {root: lab/xivo-1, rabbitmqctl: sudo -u rabbitmq rabbitmqctl}
        xivos:
          - name: xivo-1
            address: 192.168.1.124
            rabbitmq: {port: 5673, management: {user: admin}}
          - name: xivo-2
            address: xivo-2.example.com
            version: "15.19"
            webservices: {phonebook_sharing: false}
            on_box: {rabbitmqctl: [rabbitmqctl, -n, rabbit@xivo-2], source_address: 127.10.0.2}
        """)
    topo = load_topology(path)
    assert topo.name == "offices" and topo.probe_timeout == 1.5
    x1, x2 = topo.xivos
    assert (x1.version, x2.version) == ("16.13", "15.19")
    assert (x1.rabbitmq.port, x1.rabbitmq.user, x1.rabbitmq.password) == (5673, "doctor", Secret("amqp"))
    assert (x2.rabbitmq.port, x2.rabbitmq.user) == (5672, "doctor")
    assert x1.rabbitmq.management == RabbitMQManagement(port=15673, user="admin")
    assert x2.rabbitmq.management == RabbitMQManagement(port=15673)
    assert x1.consul.verify == str(tmp_path / "ca.pem")
    assert x2.webservices.phonebook_sharing is False and x1.webservices.phonebook_sharing is True
    assert x1.on_box == OnBoxAccess(root=tmp_path / "lab/xivo-1",
                                    rabbitmqctl=("sudo", "-u", "rabbitmq", "rabbitmqctl"))
    assert x2.on_box == OnBoxAccess(root=tmp_path / "lab/xivo-1",
                                    rabbitmqctl=("rabbitmqctl", "-n", "rabbit@xivo-2"),
                                    source_address="127.10.0.2")


def test_on_box_consul_command(tmp_path: Path) -> None:
    """`on_box.consul`: the argv prefix that runs consul for that XiVO (the support bundle's commands)."""
    path = write(tmp_path, TWO + "    on_box: {consul: sudo -u consul /usr/bin/consul}\n")
    x1, x2 = load_topology(path).xivos
    assert x2.on_box == OnBoxAccess(consul=("sudo", "-u", "consul", "/usr/bin/consul"))
    assert x1.on_box is None
    assert error_of(write(tmp_path, TWO + "    on_box: {consul: []}\n", "empty.yml")).endswith(
        "xivos[1].on_box.consul: expected a command, got an empty one; write e.g. consul: [consul]")


def test_env_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XD_SITE", "paris")
    monkeypatch.setenv("XD_PW", "pa$$word")
    path = write(tmp_path, TWO.replace("xivo-2\n", "${XD_SITE}-xivo\n")
                 + "    confd: {username: 'doctor-${XD_SITE}', password: '${XD_PW}'}\n")
    x2 = load_topology(path).xivos[1]
    assert x2.name == "paris-xivo"
    assert x2.confd.username == "doctor-paris"
    assert x2.confd.password == Secret("pa$$word")


def test_secret_files(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets/rabbitmq").write_text("from-file\n")
    (tmp_path / "secrets/dsn").write_text("postgresql://asterisk:pw@localhost/asterisk\n\n")
    (tmp_path / "secrets/token").write_text("tok\r\n")
    path = write(tmp_path, textwrap.dedent("""\
        defaults:
          rabbitmq: {password_file: secrets/rabbitmq}
          consul: {token_file: secrets/token}
        """) + TWO + "    on_box: {database_file: secrets/dsn}\n")
    topo = load_topology(path)
    x1, x2 = topo.xivos
    assert x1.rabbitmq.password == Secret("from-file")
    assert x2.consul.token == Secret("tok")
    assert x2.on_box is not None and x2.on_box.database == Secret("postgresql://asterisk:pw@localhost/asterisk\n")
    assert x1.on_box is None


def test_xivo_file_overrides_default_password(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("own")
    path = write(tmp_path, "defaults:\n  rabbitmq: {password: shared}\n" + TWO
                 + "    rabbitmq: {password_file: pw}\n")
    x1, x2 = load_topology(path).xivos
    assert (x1.rabbitmq.password, x2.rabbitmq.password) == (Secret("shared"), Secret("own"))


def test_explicit_links(tmp_path: Path) -> None:
    path = write(tmp_path, TWO + "  - {name: xivo-3, address: 192.168.1.126}\n" + textwrap.dedent("""\
        federation:
          links:
            - {downstream: xivo-3, upstream: xivo-1}
            - downstream: xivo-1
              upstream: xivo-2
        """))
    topo = load_topology(path)
    assert topo.federation == "links"
    assert [p.id for p in topo.pairs] == ["xivo-3->xivo-1", "xivo-1->xivo-2"]
    assert (topo.pairs[0].downstream.name, topo.pairs[0].upstream.name) == ("xivo-3", "xivo-1")


def test_full_mesh_of_three(tmp_path: Path) -> None:
    path = write(tmp_path, TWO + "  - {name: xivo-3, address: 'fe80::3'}\nfederation: full-mesh\n")
    topo = load_topology(path)
    assert [p.id for p in topo.pairs] == [
        "xivo-1->xivo-2", "xivo-1->xivo-3", "xivo-2->xivo-1",
        "xivo-2->xivo-3", "xivo-3->xivo-1", "xivo-3->xivo-2"]
    assert topo.lines == {"xivo-1": 2, "xivo-2": 4, "xivo-3": 6}


def test_secrets_never_in_repr_or_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XD_TOKEN", "t0ken-value")
    (tmp_path / "db").write_text("postgresql://asterisk:db-pass@localhost/asterisk")
    path = write(tmp_path, "defaults:\n  rabbitmq: {password: amqp-pass}\n"
                 "  consul: {token: '${XD_TOKEN}'}\n" + TWO + "    on_box: {database_file: db}\n")
    topo = load_topology(path)
    shown = repr(topo) + str(topo.describe())
    for value in ("amqp-pass", "t0ken-value", "db-pass"):
        assert value not in shown
    assert set(topo.secrets()) == {"amqp-pass", "t0ken-value",
                                   "postgresql://asterisk:db-pass@localhost/asterisk"}
    bad = write(tmp_path, "defaults:\n  rabbitmq: {password: [hunter2]}\n" + TWO, name="bad.yml")
    assert "hunter2" not in error_of(bad)


# --- find_topology ------------------------------------------------------------------------------


def test_find_explicit_is_returned_as_is(tmp_path: Path) -> None:
    assert find_topology("does/not/exist.yml") == Path("does/not/exist.yml")


def test_find_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: False if str(self).startswith("/etc/xivo-doctor")
                        else real_exists(self))
    lab = tmp_path / "lab"
    lab.mkdir()
    monkeypatch.setenv("XIVO_DOCTOR_LAB_DIR", str(lab))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(TopologyError) as info:
        find_topology(None)
    assert str(info.value) == (
        f"no topology file found (looked in ./xivo-doctor.yml, /etc/xivo-doctor/topology.yml, "
        f"{lab}/topology.yml); write one (README: Topology file), pass -T FILE, or start the lab "
        "with `xivo-doctor lab up`")
    (lab / "topology.yml").write_text(TWO)
    assert find_topology(None) == lab / "topology.yml"
    (work / "xivo-doctor.yml").write_text(TWO)
    assert find_topology(None) == Path("xivo-doctor.yml")
    assert load_topology(find_topology(None)).name == "xivo-doctor"


def test_find_etc_before_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Path, "exists", lambda self: str(self) in (
        "/etc/xivo-doctor/topology.yml", str(tmp_path / "topology.yml")))
    monkeypatch.setenv("XIVO_DOCTOR_LAB_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert find_topology(None) == Path("/etc/xivo-doctor/topology.yml")
