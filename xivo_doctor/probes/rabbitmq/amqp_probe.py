"""The federation probe: a message published on the upstream really arrives on the downstream.

Place in the pipeline: acquisition — and the doctor's only write. A temporary exclusive,
auto-delete queue on the downstream is bound to the `xivo` exchange with a unique
`xivo_doctor.probe.*` routing key; small, non-persistent, expiring messages are published on the
upstream's `xivo` exchange every ~20 ms until one arrives or the probe timeout ends (LAB-NOTES §A.6:
the first publishes are lost while the new binding travels to the upstream). Closing the
connection removes the queue; nothing is left behind. `--passive` means this is never called.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pika.exceptions
from pika.adapters.utils import connection_workflow

from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.probes.rabbitmq import federation_status as fs
from xivo_doctor.topology.model import Xivo

EXCHANGE = "xivo"  # topic, declared by XiVO's daemons (XIVO-FACTS §5)
PROBE_TTL_MS = "10000"  # probe messages expire: nothing lingers if a queue outlives the probe


def probe_delivery(probes: Any, downstream: Xivo, upstream: Xivo) -> dict[str, Any]:
    """{"delivered", "published", "waited_s", "latency_ms", "via"?} for messages upstream -> downstream."""
    budget = probes.deadline.budget(probes.timeout, _amqp_source(downstream))
    end = time.monotonic() + budget
    key = f"xivo_doctor.probe.{uuid.uuid4()}"
    sent: dict[int, float] = {}
    got: dict[str, Any] = {}

    def received(channel, method, properties, body: bytes) -> None:
        if not got:
            seq = json.loads(body).get("seq")
            got.update(at=time.monotonic(), seq=seq,
                       via=[h.get("uri") for h in (properties.headers or {}).get("x-received-from", [])])

    started = time.monotonic()
    down = _connect(downstream, budget)
    try:
        with _amqp_errors(downstream, "the temporary queue"):
            channel = down.channel()
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue, EXCHANGE, routing_key=key)
            channel.basic_consume(queue, received, auto_ack=True)
        up = _connect(upstream, max(0.1, end - time.monotonic()))
        try:
            with _amqp_errors(upstream, f"publishing on exchange {EXCHANGE}"):
                out = up.channel()
                props = pika.BasicProperties(delivery_mode=1, expiration=PROBE_TTL_MS,
                                             content_type="application/json")
                while not got and time.monotonic() < end:
                    seq = len(sent) + 1
                    sent[seq] = time.monotonic()
                    out.basic_publish(EXCHANGE, key, json.dumps({"xivo_doctor": "probe", "seq": seq}), props)
                    up.process_data_events(time_limit=0)
                    with _amqp_errors(downstream, "waiting for the probe"):
                        down.process_data_events(time_limit=0.02)
        finally:
            _close(up)
    finally:
        _close(down)  # the exclusive auto-delete queue goes with the connection
    delivered = bool(got) and got["seq"] in sent
    return {"delivered": delivered, "published": len(sent), "waited_s": round(time.monotonic() - started, 2),
            "latency_ms": round((got["at"] - sent[got["seq"]]) * 1000, 2) if delivered else None,
            **({"via": got["via"]} if delivered and got["via"] else {})}


def _amqp_source(xivo: Xivo) -> str:
    return f"AMQP on {xivo.name} ({xivo.address}:{xivo.rabbitmq.port})"


def _connect(xivo: Xivo, budget: float) -> pika.BlockingConnection:
    password = xivo.rabbitmq.password.reveal() if xivo.rabbitmq.password else ""
    params = pika.ConnectionParameters(
        host=xivo.address, port=xivo.rabbitmq.port, virtual_host=xivo.rabbitmq.vhost,
        credentials=pika.PlainCredentials(xivo.rabbitmq.user, password), connection_attempts=1,
        socket_timeout=budget, stack_timeout=budget, blocked_connection_timeout=budget,
        client_properties={"connection_name": "xivo-doctor federation probe"})
    with _amqp_errors(xivo, "connecting"):
        return pika.BlockingConnection(params)


@contextmanager
def _amqp_errors(xivo: Xivo, doing: str) -> Iterator[None]:
    """pika's exceptions -> ProbeError naming the XiVO and the reason, never the password."""
    source, user = _amqp_source(xivo), xivo.rabbitmq.user
    try:
        yield
    except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError):
        raise ProbeError(source, f"{doing}: ACCESS_REFUSED: user {user!r} and the topology's password were "
                                 "refused") from None
    except pika.exceptions.ProbableAccessDeniedError:
        raise ProbeError(source, f"{doing}: access to vhost {xivo.rabbitmq.vhost!r} refused for {user!r}") from None
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise ProbeError(source, f"{doing}: {exc.reply_code} {exc.reply_text}") from None
    except connection_workflow.AMQPConnectorStackTimeout:
        # stack_timeout: TCP accepted but no AMQP handshake within the budget (a silent port)
        raise ProbeTimeout(source, f"{doing}: timed out (no AMQP handshake)") from None
    except (pika.exceptions.AMQPError, connection_workflow.AMQPConnectorException, OSError) as exc:
        # AMQPConnectorException is not an AMQPError: BlockingConnection re-raises the workflow's own
        text = repr(exc).lower()
        if "timed out" in text or "timeout" in text:
            raise ProbeTimeout(source, f"{doing}: timed out") from None
        reason = "connection refused" if "refused" in text else fs.first_line(str(exc) or type(exc).__name__)
        raise ProbeError(source, f"{doing}: {reason}") from None


def _close(connection: pika.BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except (pika.exceptions.AMQPError, OSError):
        pass  # closing a broken connection: the broker drops the exclusive queue anyway
