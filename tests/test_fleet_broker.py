"""The broker side: a real mosquitto with mutual TLS and the fleet ACL (board/mosquitto)."""

from __future__ import annotations

import ssl
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_support import Broker, Client


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker(tmp_path_factory.mktemp("broker"), {"box-a": "emea", "box-b": "emea", "box-c": "apac"}) as b:
        yield b


def _denied(reason_code: object) -> bool:
    return getattr(reason_code, "is_failure", False)


def test_a_client_without_a_certificate_is_refused(broker: Broker) -> None:
    ctx = ssl.create_default_context(cafile=str(broker.tls / "ca.crt"))
    with socket.create_connection((broker.host, broker.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"\x10\x00")  # the handshake's refusal can surface on first use under TLS 1.3
                tls.recv(1)
                raise OSError("connection closed")


def test_box_a_can_neither_read_nor_write_box_b(broker: Broker) -> None:
    admin, a, b = Client(broker, "admin-ops"), Client(broker, "box-a"), Client(broker, "box-b")
    try:
        admin.publish("parallax/v1/box/box-b/offer", b"for b only", retain=True)
        admin.publish("parallax/v1/box/box-b/cmd", b"for b only", retain=True)
        # mosquitto 2.0 may grant the subscription itself; its ACL filters every delivery, so
        # what matters is that nothing of B's reaches A (checked below, retained messages included).
        for topic in ("parallax/v1/box/box-b/offer", "parallax/v1/box/box-b/cmd", "parallax/v1/box/box-b/status", "parallax/v1/box/+/status", "parallax/v1/#"):
            a.subscribe(topic)
        # A's forged status for B and a forged offer: the broker refuses both, nobody sees them.
        assert not _denied(b.subscribe("parallax/v1/box/box-b/offer")[0])
        watch = Client(broker, "admin-ops")
        watch.subscribe("parallax/v1/#")
        watch.collect(0.5)  # retained messages
        for topic in ("parallax/v1/box/box-b/status", "parallax/v1/box/box-b/progress", "parallax/v1/group/emea/offer", "parallax/v1/box/box-b/offer"):
            rc = a.publish(topic, b"forged")
            assert _denied(rc), topic
        assert watch.collect(1.0) == []
        assert [m[1] for m in b.collect(0.5)] == [b"for b only"]
        assert a.collect(0.2) == []
        watch.close()
    finally:
        for c in (admin, a, b):
            c.close()


def test_a_box_reads_its_group_offers_and_not_another_groups(broker: Broker) -> None:
    admin, a, c = Client(broker, "admin-ops"), Client(broker, "box-a"), Client(broker, "box-c")
    try:
        admin.publish("parallax/v1/group/emea/offer", b"emea offer", retain=True)
        admin.publish("parallax/v1/group/apac/offer", b"apac offer", retain=True)
        assert not _denied(a.subscribe("parallax/v1/group/emea/offer")[0])
        a.subscribe("parallax/v1/group/apac/offer")
        assert not _denied(c.subscribe("parallax/v1/group/apac/offer")[0])
        assert [m[1] for m in a.collect(0.5)] == [b"emea offer"]
        assert [m[1] for m in c.collect(0.2)] == [b"apac offer"]
        # Only admins publish offers: a box's offer to its own group is refused.
        assert _denied(a.publish("parallax/v1/group/emea/offer", b"box offer"))
        assert _denied(a.publish("parallax/v1/box/box-a/offer", b"self offer"))
    finally:
        for cl in (admin, a, c):
            cl.close()


def test_restart_keeps_port_and_retained_messages(broker: Broker, tmp_path: Path) -> None:
    admin = Client(broker, "admin-ops")
    admin.publish("parallax/v1/group/emea/offer", b"kept", retain=True)
    admin.close()
    broker.restart()
    a = Client(broker, "box-a")
    try:
        a.subscribe("parallax/v1/group/emea/offer")
        assert [m[1] for m in a.collect(0.5)] == [b"kept"]
    finally:
        a.close()
