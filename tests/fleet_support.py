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


# -- boxes, updates and progress ---------------------------------------------------------------
import json  # noqa: E402
import shutil  # noqa: E402

INTENT_DIR = REPO / "models" / "intent" / "1.4.0"
PLAYBOOK_DIR = REPO / "models" / "playbook" / "1"
GOLDEN = {
    "min_agreement": 1.0,
    "cases": [
        {"text": "that is way more than we budgeted", "speaker": "buyer", "intent": "objection_price"},
        {"text": "can we set up a call next week", "speaker": "buyer", "intent": "next_step"},
        {"text": "we already use salesforce for that", "speaker": "buyer", "intent": "competitor_mention"},
    ],
}


def intent_model(dest: Path, golden: dict[str, Any] | None = None, version: str = "1.4.0") -> Path:
    """The committed intent model as store version ``version`` with its golden inputs: what an admin publishes."""
    shutil.copytree(INTENT_DIR, dest)
    manifest = dest / "manifest.toml"
    text = manifest.read_text()
    manifest.write_text(text.replace('version = "1.4.0"', f'version = "{version}"', 1))
    (dest / "golden.json").write_text(json.dumps(golden or GOLDEN))
    return dest


def seed_store(store: Any, tmp: Path) -> None:
    """A box as it leaves the factory: intent 1.4.0 and playbook 1 current."""
    store.stage("intent", "1.4.0", intent_model(tmp / "seed-intent"))
    store.activate("intent", "1.4.0")
    store.stage("playbook", "1", PLAYBOOK_DIR)
    store.activate("playbook", "1")


class Progress:
    """Every update_progress event a box publishes, in order, as an admin sees them."""

    def __init__(self, broker: Broker, box: str) -> None:
        self.client = Client(broker, "admin-ops")
        self.box = box
        self.events: list[dict[str, Any]] = []
        self.client.subscribe(f"parallax/v1/box/{box}/progress")
        time.sleep(0.2)
        while not self.client.messages.empty():
            self.client.messages.get()  # the retained last state of an earlier test

    def _drain(self, timeout: float) -> None:
        try:
            topic, payload, _ = self.client.messages.get(timeout=timeout)
        except queue.Empty:
            return
        if payload:
            self.events.append(json.loads(payload))

    def wait_for(self, *states: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if ev.get("state") in states:
                    return ev
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.box}: none of {states} within {timeout} s; saw {[(e.get('state'), e.get('reason')) for e in self.events]}")
            self._drain(min(left, 0.5))

    def states(self) -> list[str]:
        return [e["state"] for e in self.events]

    def settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._drain(left)

    def close(self) -> None:
        self.client.close()
