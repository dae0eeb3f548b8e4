"""Fleet test helpers: the real-broker fixture's pieces and a small blocking MQTT 5 client."""

from __future__ import annotations

import queue
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

from fleet_rig import Broker  # noqa: E402

__all__ = ["Broker", "Client"]


class Client:
    """A blocking paho MQTT 5 client for assertions: connect, subscribe (returns reason codes),
    publish (returns the broker's answer for QoS 1), collect messages."""

    def __init__(self, broker: Broker, cn: str) -> None:
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{cn}-test-{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
        ca, cert, key = broker.cert(cn)
        self.c.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._cond = threading.Condition()
        self.c.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload, bool(m.retain)))
        self.c.on_subscribe = self._on_ack
        self.c.on_publish = self._on_ack
        self._connected = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: self._connected.set()
        self.c.connect(broker.host, broker.port, keepalive=30)
        self.c.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError(f"{cn} did not connect")

    def _on_ack(self, client: Any, userdata: Any, mid: int, *rest: Any) -> None:
        with self._cond:
            self._acks[mid] = rest[0] if rest else None
            self._cond.notify_all()

    def _wait(self, mid: int, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no acknowledgement for message {mid}")
                self._cond.wait(left)
            return self._acks.pop(mid)

    def subscribe(self, topic: str, qos: int = 1) -> list[Any]:
        _, mid = self.c.subscribe(topic, qos)
        return list(self._wait(mid))

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> Any:
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        return self._wait(info.mid) if qos else None

    def collect(self, seconds: float) -> list[tuple[str, bytes, bool]]:
        out: list[tuple[str, bytes, bool]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
