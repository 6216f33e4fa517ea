"""A XiVO declared by an IPv6 literal is asked at `[address]:port`, as RFC 3986 writes a URL's host
(foundation/netaddr.py `url_host`, used by every probe that builds a URL from the declared address).

A real HTTP server on ::1 answers xivo-ctid's `/0.1/infos`: without the brackets the URL's port
would be read as part of the address and nothing would be asked."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from services import starts_services

from conftest import TEST_PORTS, loopback_topology
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.netaddr import url_host
from xivo_doctor.probes import Probes
from xivo_doctor.topology import load_topology

UUID = "0b2d2a9e-6f0e-4d0c-9d59-ipv6-answered"


@pytest.mark.parametrize(("address", "host"), [
    ("::1", "[::1]"), ("fd00::2", "[fd00::2]"), ("[::1]", "[::1]"), ("198.18.0.1", "198.18.0.1"),
    ("xivo-1.example.org", "xivo-1.example.org"),
])
def test_url_host_brackets_ipv6_literals_only(address, host):
    assert url_host(address) == host


class _V6Server(HTTPServer):
    address_family = socket.AF_INET6


class _Infos(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"uuid": UUID}).encode() if self.path == "/0.1/infos" else b"{}"
        self.send_response(200 if self.path == "/0.1/infos" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
@starts_services
def ctid_on_ipv6_loopback():
    try:
        server = _V6Server(("::1", TEST_PORTS["ctid"]), _Infos)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield
    server.shutdown()
    server.server_close()


def test_a_xivo_declared_by_an_ipv6_literal_is_asked_in_brackets(ctid_on_ipv6_loopback, tmp_path):
    topology = load_topology(loopback_topology(tmp_path, ["::1", "127.10.176.2"]))
    probes = Probes(topology, Deadline(10))
    assert probes.ctid.infos(topology.xivos[0])["uuid"] == UUID
