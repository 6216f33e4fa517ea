"""The federation output parsers on the outputs captured in LAB-NOTES §A.5 and on the lab's RabbitMQ 3.10."""

from __future__ import annotations

import pytest
from status_text import parse_status

from xivo_doctor.probes.rabbitmq import federation_status as fs


def status_output(status: str, extra: str = "", upstream: str = "xivo-dev-2") -> str:
    """`rabbitmqctl eval 'rabbit_federation_status:status().'` as LAB-NOTES §A.5 prints it."""
    return f"""[[{{exchange,<<"xivo">>}},
  {{upstream_exchange,<<"xivo">>}},
  {{type,exchange}},
  {{vhost,<<"/">>}},
  {{upstream,<<"{upstream}">>}},
  {{id,<<"97f0b7a0">>}},
  {{status,{status}}},{extra}
  {{uri,<<"amqp://127.0.1.1">>}},
  {{timestamp,{{{{2026,11,25}},{{7,58,18}}}}}}]]
"""


RUNNING = status_output("running", '\n  {local_connection,<<"<rabbit-b@localhost.1795593458.941.0>">>},')
AUTH = ('{auth_failure,"ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. '
        'For details see the broker logfile."}')
NOPROC = "Error:\n{:noproc, {:gen_server, :call, [:rabbit_federation_status, :status, :infinity]}}\n"


def test_running_link():
    [link] = parse_status(RUNNING)
    assert link == {
        "exchange": "xivo", "upstream_exchange": "xivo", "type": "exchange", "vhost": "/",
        "upstream": "xivo-dev-2", "status": "running", "error": None, "uri": "amqp://127.0.1.1",
        "timestamp": "2026-11-25 07:58:18",
    }


@pytest.mark.parametrize(("error", "rendered"), [
    ("econnrefused", "econnrefused"),
    (AUTH, AUTH),
    ("unknown_host", "unknown_host"),
    ("handshake_receive_timed_out", "handshake_receive_timed_out"),
    ("timeout", "timeout"),
])
def test_error_links_render_their_reason(error, rendered):
    [link] = parse_status(status_output("error", f"\n  {{error,{error}}},"))
    assert link["status"] == "error" and link["error"] == rendered


def test_starting_has_no_error_key():
    [link] = parse_status(status_output("starting"))
    assert link["status"] == "starting" and link["error"] is None


def test_an_older_plugins_combined_status_tuple():
    [link] = parse_status(status_output("{error,econnrefused}"))
    assert (link["status"], link["error"]) == ("error", "econnrefused")


def test_no_link_and_plugin_off():
    assert parse_status("[]\n") == []
    assert parse_status(NOPROC) is None
    assert fs.plugin_not_running(NOPROC)


def test_a_caught_status_call_in_a_combined_eval():
    assert fs.links_from_term(fs.parse_term(
        "{'EXIT',{noproc,{gen_server,call,[rabbit_federation_status,status,infinity]}}}")) is None
    assert fs.links_from_term(fs.parse_term("{'EXIT',{undef,[{rabbit_federation_status,status,[],[]}]}}")) is None
    with pytest.raises(fs.ParseError, match="failed"):
        fs.links_from_term(fs.parse_term("{'EXIT',{badarg,[]}}"))


@pytest.mark.parametrize("garbage", [
    "", "[[{exchange,<<\"xivo\">>}]",  # cut short
    "Error: unable to perform an operation on node 'rabbit@xivo'",
    "[[{status,running}]]",  # no upstream
    "[{status,running}]",  # not a list of links
    "[[{upstream,<<\"a\">>},{status,\"running\"}]]",  # status not an atom
    "{ok} trailing",
    "[#Ref<0.1.2.3>]",
    "[[{upstream,<<\"a\">>},{status,running},{timestamp,{1,2}}]]",
])
def test_unknown_shapes_raise_parse_error(garbage):
    with pytest.raises(fs.ParseError):
        parse_status(garbage)


def test_terms_strings_binaries_maps_and_escapes():
    term = fs.parse_term("""{<<"Ã©">>,<<"é"/utf8>>,"a\\"b\\\\c\\n\\x41\\101",<<104,105>>,<<>>,<12307.1189.0>,
        1.5,-3,#{a => 1},'quoted atom',[],{}}""")
    assert term == ("é", "é", 'a"b\\c\nAA', "hi", "", "<12307.1189.0>", 1.5, -3, {"a": 1}, "quoted atom", [], ())
    assert isinstance(term[9], fs.Atom) and not isinstance(term[0], fs.Atom)
    assert fs.render(fs.parse_term(AUTH)) == AUTH


def test_stored_json_values_and_proplists():
    value = fs.parse_term('[{<<"max-hops">>,1},{<<"uri">>,<<"amqp://xivo:xivo@127.10.2.1">>},{<<"x">>,true}]')
    assert fs.to_json(value) == {"max-hops": 1, "uri": "amqp://xivo:xivo@127.10.2.1", "x": True}
    with pytest.raises(fs.ParseError):
        fs.proplist([1, 2], "a policy")


# -- list_parameters / list_policies / rabbitmq-plugins (captured on the lab's RabbitMQ 3.10.8) ------

PARAMS_JSON = ('[\n{"component":"federation-upstream","name":"xivo-1",'
               '"value":"{\\"max-hops\\":1,\\"uri\\":\\"amqp://xivo:s3cret@127.10.2.1\\"}"}\n]\n')
PARAMS_TEXT = ('Listing runtime parameters for vhost "/" ...\ncomponent\tname\tvalue\n'
               'federation-upstream\txivo-1\t{"max-hops":1,"uri":"amqp://xivo:s3cret@127.10.2.1"}\n')
POLICIES_JSON = ('[\n{"vhost":"/","name":"federate-xivo","pattern":"xivo","apply-to":"exchanges",'
                 '"definition":"{\\"federation-upstream-set\\":\\"all\\"}","priority":1}\n]\n')
POLICIES_TEXT = ('Listing policies for vhost "/" ...\nvhost\tname\tpattern\tapply-to\tdefinition\tpriority\n'
                 '/\tfederate-xivo\txivo\texchanges\t{"federation-upstream-set":"all"}\t1\n')
POLICY = {"vhost": "/", "name": "federate-xivo", "pattern": "xivo", "apply-to": "exchanges",
          "definition": {"federation-upstream-set": "all"}, "priority": 1}


@pytest.mark.parametrize("text", [PARAMS_JSON, PARAMS_TEXT, PARAMS_TEXT.split("\n", 1)[1],
                                  # RabbitMQ 3.3: no column header, a "...done." line
                                  PARAMS_TEXT.replace("component\tname\tvalue\n", "") + "...done.\n"])
def test_list_parameters(text):
    [row] = fs.parse_parameters(text)
    assert row == {"component": "federation-upstream", "name": "xivo-1",
                   "value": {"max-hops": 1, "uri": "amqp://xivo:s3cret@127.10.2.1"}}


def test_a_parameter_value_that_is_not_json_is_never_quoted():
    with pytest.raises(fs.ParseError) as caught:
        fs.parse_parameters("federation-upstream\txivo-1\t{uri: amqp://xivo:s3cret@h\n")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("text", [POLICIES_JSON, POLICIES_TEXT, POLICIES_TEXT.split("\n", 1)[1],
                                  # RabbitMQ 3.3 prints apply-to before pattern
                                  '/\tfederate-xivo\texchanges\txivo\t{"federation-upstream-set":"all"}\t1\n'])
def test_list_policies(text):
    assert fs.parse_policies(text) == [POLICY]


def test_policies_of_unknown_shape():
    with pytest.raises(fs.ParseError):
        fs.parse_policies("/\tfederate-xivo\txivo\n")
    with pytest.raises(fs.ParseError):
        fs.parse_policies('/\tp\txivo\texchanges\t{"a":1}\thigh\n')


def test_plugins():
    assert fs.parse_plugins('Listing plugins with pattern ".*" ...\nrabbitmq_federation\n') == {"rabbitmq_federation"}
    assert fs.parse_plugins("rabbitmq_federation\nrabbitmq_management\n") == {"rabbitmq_federation",
                                                                              "rabbitmq_management"}
    assert fs.parse_plugins('{"format":"minimal","plugins":[{"name":"rabbitmq_federation"}],"status":"running"}') \
        == {"rabbitmq_federation"}
    assert fs.parse_plugins("") == set()
    with pytest.raises(fs.ParseError):
        fs.parse_plugins(" Configured: E = explicitly enabled; e = implicitly enabled\n")


# -- upstream URIs: the password never leaves -----------------------------------------------------

@pytest.mark.parametrize(("uri", "masked"), [
    ("amqp://xivo:s3cret@127.10.2.1", "amqp://xivo:***@127.10.2.1"),
    ("amqp://xivo:s3/c@r:et@h.example:5673/%2F", "amqp://xivo:***@h.example:5673/%2F"),
    ("amqp://xivo@127.10.2.1", "amqp://xivo@127.10.2.1"),
    ("amqp://127.10.2.1", "amqp://127.10.2.1"),
])
def test_mask_uri(uri, masked):
    assert fs.mask_uri(uri) == masked


def test_upstream_keeps_only_whether_a_password_is_set():
    up = fs.upstream({"uri": "amqp://xivo:s3cret@xivo-1.example:5673/%2F", "max-hops": 2, "trust-user-id": False})
    assert up["uri"] == "amqp://xivo:***@xivo-1.example:5673/%2F" and up["max-hops"] == 2
    assert up["uris"] == [{"scheme": "amqp", "host": "xivo-1.example", "port": 5673, "user": "xivo",
                           "password_set": True, "vhost": "/", "masked": up["uri"]}]
    assert "s3cret" not in repr(up)
    several = fs.upstream({"uri": ["amqp://a", "amqps://b"]})
    assert [u["host"] for u in several["uris"]] == ["a", "b"] and several["max-hops"] is None
    with pytest.raises(fs.ParseError):
        fs.upstream({"max-hops": 1})


def test_policy_patterns_are_unanchored_regexes():
    assert fs.pattern_matches("xivo", "xivo") and fs.pattern_matches("^xi", "xivo") and fs.pattern_matches(".*", "xivo")
    assert not fs.pattern_matches("^amq\\.", "xivo") and not fs.pattern_matches("(", "xivo")
