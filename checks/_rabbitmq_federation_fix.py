"""rabbitmq-federation's fix: the manual's RabbitMQ commands for what failed (checks/rabbitmq_federation.py).

Place in the pipeline: the checks; a private part of the rabbitmq-federation check (a file named
`_*.py` is not a check of its own), apart only because the two together outgrow one module.
"""

from __future__ import annotations

from xivo_doctor.check import FixContext
from xivo_doctor.foundation.results import FixOut


def federation_fix(ctx: FixContext) -> FixOut:
    """The manual's RabbitMQ commands (contact_and_presence_sharing.rst, "Configuring RabbitMQ"),
    with this pair's names and addresses, for what failed only; passwords as placeholders."""
    down, up, ev = ctx.xivo, ctx.peer, ctx.evidence
    assert down is not None and up is not None
    name, user = ev.get("upstream") or up.name, ev.get("uri_user") or "xivo"
    port = "" if up.rabbitmq.port == 5672 else f":{up.rabbitmq.port}"
    on_down, on_up = f"  # on {down.name}", f"  # on {up.name}"
    set_upstream = (f"rabbitmqctl set_parameter federation-upstream {name} '{{\"uri\":\"amqp://{user}:"
                    f"<password of the {user} user on {up.name}>@{up.address}{port}\",\"max-hops\":1}}'" + on_down)
    priority = (ev.get("policy") or {}).get("priority", 0) + 1 if "policy-shadowed" in ev.get("problems", ()) else 1
    set_policy = (f"rabbitmqctl set_policy federate-xivo 'xivo' '{{\"federation-upstream-set\":\"all\"}}' "
                  f"--priority {priority} --apply-to exchanges" + on_down)
    # The manual's user (contact_and_presence_sharing.rst, "Create a RabbitMQ user"), created only
    # where it is missing: `add_user` refuses a user that exists, and the upstream's other
    # downstreams log in with it, so its password is never changed here
    create_user = [f'rabbitmqctl list_users -q | grep -q "^{user}[[:space:]]" || rabbitmqctl add_user {user} '
                   f"<password of the {user} user on {up.name}>" + on_up,
                   f"rabbitmqctl set_user_tags {user} administrator" + on_up,
                   f'rabbitmqctl set_permissions -p {up.rabbitmq.vhost} {user} ".*" ".*" ".*"' + on_up]
    enable = "rabbitmq-plugins enable rabbitmq_federation" + on_down
    firewall = [f"iptables -I INPUT -p tcp -s {down.address} --dport {up.rabbitmq.port} -j ACCEPT" + on_up]
    steps = {
        "plugin": (f"enable the federation plugin on {down.name}, then restart RabbitMQ there",
                   [enable, "service rabbitmq-server restart" + on_down], "#create-a-rabbitmq-user"),
        "restart": (f"restart RabbitMQ on {down.name}: the plugin is enabled but not loaded yet",
                    ["service rabbitmq-server restart" + on_down], "#restart-rabbitmq"),
        "upstream-missing": (f"declare on {down.name} an upstream for {up.name} at {up.address}", [set_upstream], ""),
        "upstream-address": (f"point upstream {name} of {down.name} at {up.name}'s address {up.address}",
                             [set_upstream], ""),
        "upstream-port": (f"point upstream {name} of {down.name} at {up.name}'s AMQP port {up.rabbitmq.port}",
                          [set_upstream], ""),
        "unknown-host": (f"write {up.name}'s address {up.address} in upstream {name}, not a name {down.name} "
                         "cannot resolve", [set_upstream], ""),
        "policy": (f"set the manual's federate-xivo policy on {down.name}", [set_policy], ""),
        "policy-shadowed": (f"give federate-xivo a priority above the policy that wins on exchange xivo (or add "
                            f"the federation key to that policy's definition) on {down.name}", [set_policy], ""),
        "auth": (f"{up.name} refuses the upstream URI's login: write the password of {up.name}'s {user} user "
                 f"in {down.name}'s upstream (create the user first where it is missing, as the manual says; leave "
                 f"an existing user's password as it is, since the other XiVOs federating from {up.name} log in "
                 "with it)",
                 [*create_user, set_upstream], "#create-a-rabbitmq-user"),
        "permissions": (f"give the {user} user its permissions on {up.name}", create_user[2:],
                        "#create-a-rabbitmq-user"),
        "refused": (f"start RabbitMQ on {up.name}, listening on {up.address} (XiVO's rabbitmq.config says "
                    "0.0.0.0:5672)", ["service rabbitmq-server status" + on_up,
                                      "grep -n tcp_listeners /etc/rabbitmq/rabbitmq.config" + on_up,
                                      "service rabbitmq-server restart" + on_up], "#configuring-rabbitmq"),
        "unreachable": (f"let {down.name} reach {up.address}:{up.rabbitmq.port}: open the port to it on {up.name}, "
                        "and make sure that address is RabbitMQ's", firewall, "#configuring-rabbitmq"),
        "starting": (f"run xivo-doctor again in a minute; if the link still starts, open {up.rabbitmq.port}/tcp "
                     f"on {up.name} to {down.name}", firewall, "#configuring-rabbitmq"),
        "link-missing": (f"make sure the exchange xivo exists on {down.name}: XiVO's daemons declare it when they "
                         "start", ["rabbitmqctl list_exchanges name type" + on_down,
                                   "service xivo-confd restart" + on_down], ""),
        "link-error": ("read the link's error and RabbitMQ's log on the downstream",
                       ["rabbitmqctl eval 'rabbit_federation_status:status().'" + on_down], "#troubleshooting"),
        "delivery": ((f"the link runs but nothing crosses: check that the exchange xivo exists on {up.name}, then "
                      f"set the policy again on {down.name} to restart the link") if ev.get("link") else
                     (f"nothing crosses and the configuration of {down.name} could not be read from here: run "
                      f"xivo-doctor on {down.name}, or follow the manual's RabbitMQ steps there"),
                     ["rabbitmqctl list_exchanges name type" + on_up, set_policy] if ev.get("link") else
                     [enable, set_upstream, set_policy], ""),
    }
    chosen = [steps[p] for p in ev.get("problems") or ["delivery"] if p in steps]
    commands = list(dict.fromkeys(c for _, cmds, _ in chosen for c in cmds))
    doc = next((d for _, _, d in chosen if d), "#setup-message-federation")
    return FixOut(summary="; ".join(s for s, _, _ in chosen), commands=tuple(commands),
                  doc="contact_and_presence_sharing.rst" + doc)
