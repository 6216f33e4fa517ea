"""lab: real RabbitMQ nodes federated exactly as the XiVO manual says (LAB-NOTES §A.4–§A.6).

`setup_federation` runs the manual's `rabbitmqctl` commands ("Configuring RabbitMQ",
contact_and_presence_sharing.rst; XIVO-FACTS §5) against one lab node; the orchestrator runs it
for every node (concurrently across nodes if it likes). The plugin itself is enabled through
`enabled_plugins` before the first start, which is what `rabbitmq-plugins enable` + restart leave.
`restore_federation` is `lab heal`'s: nothing where nothing changed, else the saved definitions
imported back, else the same commands.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pika

from xivo_doctor.lab.rabbitmq.node import RabbitNode, ctl

EXCHANGE = "xivo"  # topic, durable: as xivo-dird / xivo-confd declare it (XIVO-FACTS §5)
POLICY = "federate-xivo"


def upstream_uri(peer: RabbitNode, user: str = "xivo", password: str = "xivo") -> str:
    """`amqp://xivo:xivo@<peer address>` as in the manual; `:port` only when not 5672."""
    port = "" if peer.amqp_port == 5672 else f":{peer.amqp_port}"
    return f"amqp://{user}:{password}@{peer.address}{port}"


def set_upstream(node: RabbitNode, lab_dir: Path, peer: RabbitNode, *, user: str = "xivo",
                 password: str = "xivo") -> None:
    """The manual's `set_parameter federation-upstream <peer> '{"uri": ..., "max-hops": 1}'`."""
    value = json.dumps({"uri": upstream_uri(peer, user, password), "max-hops": 1}, separators=(",", ":"))
    ctl(node, lab_dir, "set_parameter", "federation-upstream", peer.name, value)


def setup_federation(node: RabbitNode, lab_dir: Path, peers: list[RabbitNode], *, user: str = "xivo",
                     password: str = "xivo") -> None:
    """Run the manual's commands on `node` (one upstream per peer: max-hops 1 needs a full mesh).

    Idempotent: an existing user gets its password changed instead. About 0.3–0.5 s per call
    (LAB-NOTES §A.3); the link is `running` right after (1.76 s for a fresh node, §A.3).
    The peers need the same user, since each upstream URI logs in to the peer (§A.4).
    """
    added = ctl(node, lab_dir, "add_user", user, password, check=False)
    if added.returncode != 0:
        if "already exists" not in added.stdout + added.stderr:
            raise RuntimeError(f"add_user {user} on {node.nodename}: {(added.stderr or added.stdout).strip()}")
        ctl(node, lab_dir, "change_password", user, password)
    ctl(node, lab_dir, "set_user_tags", user, "administrator")
    ctl(node, lab_dir, "set_permissions", "-p", "/", user, ".*", ".*", ".*")
    for peer in peers:
        set_upstream(node, lab_dir, peer, user=user, password=password)
    ctl(node, lab_dir, "set_policy", POLICY, "xivo", '{"federation-upstream-set":"all"}',
        "--priority", "1", "--apply-to", "exchanges")
    declare_exchange(node, user, password)


# Everything `setup_federation` leaves on a node, read in one `rabbitmqctl eval` (one Erlang VM start,
# about 0.5 s, where the commands themselves take about 6 s): the federation plugin running, the
# vhost's runtime parameters and policies, the users and their tags, whether the user logs in with
# its password, and its permissions. Lists are sorted so that equal states print equal text. The same
# eval counts the federation links `running` (`rabbit_federation_status:status()`, as the manual's
# command lists them, §A.5), kept apart from that text: `lab heal` then needs no second VM start to
# know the links of a node it left alone are up.
_STATE_EXPRESSION = (
    "{running_links, case catch rabbit_federation_status:status() of "
    "L when is_list(L) -> length([S || S <- L, proplists:get_value(status, S) =:= running]); _ -> 0 end, "
    "lists:sort(["
    "{plugin, lists:member(rabbitmq_federation, rabbit_plugins:active())}, "
    "{params, lists:sort([lists:sort(P) || P <- rabbit_runtime_parameters:list(<<\"/\">>)])}, "
    "{policies, lists:sort([lists:sort(P) || P <- rabbit_policy:list(<<\"/\">>)])}, "
    "{login, element(1, rabbit_access_control:check_user_pass_login(<<\"{user}\">>, <<\"{password}\">>))}, "
    "{users, lists:sort([lists:sort(U) || U <- rabbit_auth_backend_internal:list_users()])}, "
    "{perms, lists:sort([lists:sort(P) || P <- rabbit_auth_backend_internal:list_user_permissions(<<\"{user}\">>)])}"
    "])}."
)
_RUNNING_LINKS = re.compile(r"^\{running_links,\s*(\d+),\s*")


def _read_state(node: RabbitNode, lab_dir: Path, user: str = "xivo", password: str = "xivo") -> tuple[str | None, int]:
    """(the definitions' text, or None when they cannot be read; the links running)."""
    expression = _STATE_EXPRESSION.replace("{user}", user).replace("{password}", password)
    done = ctl(node, lab_dir, "eval", expression, check=False, timeout=30)
    found = _RUNNING_LINKS.match(done.stdout) if done.returncode == 0 else None
    if found is None:
        return None, 0
    # one line: the pretty-printer's line breaks and indents depend on where the list starts
    text = re.sub(r"\s*\n\s*", "", done.stdout[found.end():].strip())
    return (text[:-1] if text.endswith("}") else None), int(found.group(1))


def federation_state(node: RabbitNode, lab_dir: Path, user: str = "xivo", password: str = "xivo") -> str | None:
    """The node's federation definitions as one comparable text, or None when they cannot be read.

    `lab heal` compares it with the text read right after its last `setup_federation` and skips
    the manual's commands when nothing changed since (LAB-NOTES §A.3: they are the slow part)."""
    return _read_state(node, lab_dir, user, password)[0]


def restore_federation(node: RabbitNode, lab_dir: Path, peers: list[RabbitNode], healthy: Path) -> bool:
    """The federation definitions as right after the last `setup_federation` (`healthy` keeps their
    text, `healthy`.json the definitions themselves): nothing when they still read so (one `rabbitmqctl
    eval`, about 0.5 s); else, the plugin enabled if it was not (what it kept may be all), those
    definitions imported back in one command;
    else (or when that does not give them back) the plugin enabled and the manual's commands run again
    (about 6 s a node). Whatever changed them (a fault, a fix, a hand) shows in the text.
    True when nothing was changed and that same read saw a running link to every peer."""
    def as_saved(text: str | None) -> bool:
        if text is None or not healthy.is_file() or healthy.read_text() != text:
            return False
        declare_exchange(node)
        return True

    now, running = _read_state(node, lab_dir)
    if as_saved(now):
        return running >= len(peers)
    if now is not None and "{plugin,false}" in now:  # disabled: its upstreams and policy stay stored
        ctl(node, lab_dir, "enable", "rabbitmq_federation", tool="rabbitmq-plugins")
        now = federation_state(node, lab_dir)
        if as_saved(now):
            return False
    saved = healthy.with_suffix(".json")
    if now is not None and "{plugin,true}" in now and healthy.is_file() and saved.is_file():
        ctl(node, lab_dir, "import_definitions", str(saved), check=False)
        if as_saved(federation_state(node, lab_dir)):
            return False
    ctl(node, lab_dir, "enable", "rabbitmq_federation", tool="rabbitmq-plugins")
    setup_federation(node, lab_dir, peers)
    save_healthy(node, lab_dir, healthy)
    return False


def save_healthy(node: RabbitNode, lab_dir: Path, healthy: Path) -> None:
    """Keep what `setup_federation` just left (`healthy` its text, `healthy`.json its definitions), for
    `restore_federation`; `lab up` saves it too, so that the first heal imports rather than runs the
    commands again (about 12 s there, 1.5 s at `lab up`)."""
    after = federation_state(node, lab_dir)
    if after is not None and _save_definitions(node, lab_dir, healthy.with_suffix(".json")):
        healthy.write_text(after)
    else:
        healthy.unlink(missing_ok=True)


# What `setup_federation` sets, of `rabbitmqctl export_definitions`: importing those back is
# `import_definitions`, one command (it adds and overwrites; it removes nothing, nor do the commands)
_SAVED = ("users", "vhosts", "permissions", "parameters", "policies")


def _save_definitions(node: RabbitNode, lab_dir: Path, saved: Path) -> bool:
    done = ctl(node, lab_dir, "export_definitions", "-", "--format", "json", check=False)
    try:
        exported = json.loads(done.stdout[done.stdout.index("{"):]) if done.returncode == 0 else None
    except ValueError:
        exported = None
    if not isinstance(exported, dict):
        saved.unlink(missing_ok=True)
        return False
    saved.write_text(json.dumps({key: exported.get(key, []) for key in _SAVED}))
    return True


def declare_exchange(node: RabbitNode, user: str = "xivo", password: str = "xivo") -> None:
    """Declare `xivo` (topic, durable) as XiVO's daemons do; the policy then federates it (§A.4)."""
    params = pika.ConnectionParameters(node.address, node.amqp_port, credentials=pika.PlainCredentials(user, password),
                                       connection_attempts=3, retry_delay=0.2, socket_timeout=2)
    connection = pika.BlockingConnection(params)
    try:
        connection.channel().exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    finally:
        connection.close()


def federation_status(node: RabbitNode, lab_dir: Path) -> str:
    """Raw output of the manual's `rabbitmqctl eval 'rabbit_federation_status:status().'` (§A.5).

    On failure (plugin not enabled: `{:noproc, ...}`; node down) the error text is returned too.
    """
    result = ctl(node, lab_dir, "eval", "rabbit_federation_status:status().", check=False)
    return result.stdout if result.returncode == 0 else (result.stdout + result.stderr)


_LINK = re.compile(r"\{exchange,")
_UPSTREAM = re.compile(r'\{upstream,\s*<<"([^"]*)">>\}')
_STATUS = re.compile(r"\{status,\s*(\w+)\}")
_ERROR = re.compile(r"\{error,\s*\{?(\w+)")


def link_states(raw: str) -> dict[str, str]:
    """Upstream name → `running` / `starting` / `error:<reason>` parsed from `federation_status` (§A.5)."""
    states: dict[str, str] = {}
    for chunk in _LINK.split(raw)[1:]:
        upstream, status = _UPSTREAM.search(chunk), _STATUS.search(chunk)
        if not upstream or not status:
            continue
        error = _ERROR.search(chunk)
        states[upstream.group(1)] = f"{status.group(1)}:{error.group(1)}" if error else status.group(1)
    return states
