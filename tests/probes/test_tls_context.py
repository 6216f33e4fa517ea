"""HTTPS through the shared TLS contexts (probes/tls_context.py) still verifies what `verify` asks.

A real TLS server on 127.10.176.1 with a self-signed certificate as the lab makes XiVO's: the
contexts are shared across requests (the speed-up of issue 7), and verification is unchanged —
off, against the certificate itself as CA file or directory, or against the default bundle
(which must refuse a self-signed certificate), and an unreadable CA path is a ProbeError.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
from services import starts_services

from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.lab.nodes import make_certificate
from xivo_doctor.lab.standins.base import QuietHandler, serve
from xivo_doctor.probes.transport import tls_context
from xivo_doctor.probes.transport.http import fetch

ADDRESS, PORT = "127.10.176.1", 19443


@pytest.fixture(scope="module")
@starts_services
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    make_certificate(root, ADDRESS)
    crt = root / "usr/share/xivo-certs/server.crt"

    class Handler(QuietHandler):
        def do_GET(self):
            self.send_json(200, {"uuid": "u-1"})

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, root / "usr/share/xivo-certs/server.key")
    httpd = serve(ADDRESS, PORT, Handler, tls=context)
    # the same certificate as a CA directory (OpenSSL finds it by its subject hash)
    ca_dir = root / "ca"
    ca_dir.mkdir()
    digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(crt)], capture_output=True,
                            text=True, check=True).stdout.strip()
    shutil.copy(crt, ca_dir / f"{digest}.0")
    yield crt, ca_dir
    httpd.shutdown()
    httpd.server_close()


def get(verify):
    return fetch(f"https://{ADDRESS}:{PORT}/1.1/infos", source="xivo-confd of xivo-1", deadline=Deadline(30),
                 timeout=5, verify=verify)


def test_one_context_per_setting_whatever_the_number_of_requests(server):
    crt, _ = server
    for _ in range(5):
        assert get(False).json("x") == {"uuid": "u-1"}
    assert tls_context.for_verify(False) is tls_context.for_verify(False)
    assert tls_context.for_verify(str(crt)) is not tls_context.for_verify(False)


def test_verification_off_and_against_the_certificate_itself(server):
    crt, ca_dir = server
    assert get(False).status == 200
    assert get(str(crt)).status == 200  # as a CA file
    assert get(str(ca_dir)).status == 200  # as a CA directory
    assert get(False).status == 200  # a verifying request did not change the shared unverified context


def test_the_default_bundle_refuses_a_self_signed_certificate(server):
    with pytest.raises(ProbeError, match="TLS failed: certificate verify failed"):
        get(True)
    assert get(False).status == 200  # ... and the refusal did not leak into the other setting


def test_an_unreadable_ca_path_is_a_probe_error(server, tmp_path):
    with pytest.raises(ProbeError, match=r"xivo-confd of xivo-1: cannot load the CA certificates to verify with"):
        get(str(tmp_path / "missing.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ProbeError, match=r"cannot load the CA certificates"):
        get(str(garbage))
