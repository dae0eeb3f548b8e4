"""The admin side of the fleet protocol: build and sign offers, publish chunks, read the fleet.

Used by ``parallax admin`` (firmware/cli/admin.py), the fleet tests and tools/bench_fleet.py.
Runs on an admin's machine, never on a box.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import ssl
import tarfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.atomic import atomic_write
from firmware.errors import FleetError, InputError
from firmware.fleet.manifest import is_version
from firmware.fleet.signing import SigningKey
from firmware.fleet.unpack import GOLDEN_FILE

PREFIX = "parallax/v1"
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    # Sent as the MQTT username with no password. mosquitto ignores it (use_identity_as_username
    # takes the CN); ejabberd's mod_mqtt needs it equal to the certificate's CN to accept the
    # certificate as the login (tools/fleet_rig.py EjabberdBroker).
    username: str | None = None

    @classmethod
    def from_tls_dir(cls, broker: str, tls_dir: Path, admin: str) -> Connection:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise InputError(f"--broker wants HOST:PORT, got {broker!r}")
        return cls(host, int(port), tls_dir / "ca.crt", tls_dir / f"admin-{admin}.crt", tls_dir / f"admin-{admin}.key")


class AdminClient:
    """A connected MQTT 5 client with an admin certificate; blocking helpers for the CLI."""

    def __init__(self, conn: Connection, *, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        for path in (conn.ca, conn.cert, conn.key):
            if not Path(path).is_file():
                raise InputError(f"TLS file not found: {path}")
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"admin-{secrets.token_hex(4)}", protocol=mqtt.MQTTv5)
        self.c.tls_set(ca_certs=str(conn.ca), certfile=str(conn.cert), keyfile=str(conn.key), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if conn.username:
            self.c.username_pw_set(conn.username)
        self.c.max_inflight_messages_set(64)
        self.c.max_queued_messages_set(0)
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: self._connected.set() if not rc.is_failure else None
        self.c.on_message = self._on_message
        try:
            self.c.connect(conn.host, conn.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise FleetError(f"cannot reach the broker at {conn.host}:{conn.port}: {exc}") from None
        self.c.loop_start()
        if not self._connected.wait(10):
            self.close()
            raise FleetError(f"the broker at {conn.host}:{conn.port} did not accept this admin certificate")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def publish(self, topic: str, payload: bytes, *, retain: bool = True, timeout: float = 60.0) -> None:
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=timeout)
        if not info.is_published():
            raise FleetError(f"the broker did not take the message on {topic}")

    def publish_many(self, items: Iterable[tuple[str, bytes]], *, retain: bool = True, timeout: float = 600.0) -> None:
        infos = [self.c.publish(topic, payload, qos=1, retain=retain) for topic, payload in items]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise FleetError("the broker did not take every chunk in time")

    def collect(self, topics: Iterable[str], seconds: float) -> list[tuple[str, bytes]]:
        for t in topics:
            self.c.subscribe(t, qos=1)
        time.sleep(seconds)
        with self._lock:
            out, self.messages = self.messages, []
        return out

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


# -- artifacts --------------------------------------------------------------------------------
def model_tar(model_dir: Path, golden: Path | None = None) -> bytes:
    """A deterministic uncompressed tar of a store version folder (plus ``golden`` as golden.json).

    The folder is what the box's model store stages: ``manifest.toml`` (its name and version are the
    update's) and the files it lists, checked here against their hashes so nothing broken is sent.
    """
    from firmware.errors import ModelError
    from firmware.store import read_manifest

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"model folder not found: {model_dir}")
    try:
        read_manifest(model_dir).verify()
    except ModelError as exc:
        raise InputError(f"{model_dir} is not a model store version folder: {exc}") from None
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and not p.is_symlink() and not p.name.startswith("."))
    has_golden = any(p.relative_to(model_dir).as_posix() == GOLDEN_FILE for p in files)
    if golden is None and not has_golden:
        raise InputError(f"{model_dir} has no {GOLDEN_FILE} and no --golden was given: boxes would refuse it untested")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [(p.relative_to(model_dir).as_posix(), p) for p in files if not (golden and p.name == GOLDEN_FILE and p.parent == model_dir)]
        if golden is not None:
            entries.append((GOLDEN_FILE, Path(golden)))
        for arcname, path in sorted(entries):
            data = path.read_bytes()
            info = tarfile.TarInfo(arcname)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def describe(kind: str, name: str, version: str, data: bytes, *, topic_base: str | None, url_base: str | None, chunk_bytes: int = CHUNK_BYTES) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    art: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "version": version,
        "size": len(data),
        "sha256": sha,
        "chunk_bytes": chunk_bytes,
        "chunk_sha256": [hashlib.sha256(data[i : i + chunk_bytes]).hexdigest() for i in range(0, len(data), chunk_bytes)],
    }
    if topic_base is not None:
        art["topic"] = f"{topic_base}/artifact/{sha}"
    if url_base is not None:
        art["url"] = f"{url_base.rstrip('/')}/{sha}"
    return art


def chunks(art: dict[str, Any], data: bytes) -> list[tuple[str, bytes]]:
    step = art["chunk_bytes"]
    return [(f"{art['topic']}/{i}", data[i * step : (i + 1) * step]) for i in range(len(art["chunk_sha256"]))]


def make_offer(artifacts: list[dict[str, Any]], *, group: str | None = None, boxes: Iterable[str] = (), life_s: float = 7 * 86400.0, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    target: dict[str, Any] = {}
    if group:
        target["group"] = group
    if boxes:
        target["boxes"] = list(boxes)
    return {
        "type": "update_offer",
        "v": 1,
        "t": now,
        "update_id": secrets.token_hex(8),
        "issued_at": now,
        "expires_at": now + life_s,
        "target": target,
        "artifacts": artifacts,
    }


def make_command(action: str, name: str, *, group: str | None = None, boxes: Iterable[str] = (), life_s: float = 86400.0) -> dict[str, Any]:
    now = time.time()
    target: dict[str, Any] = {"group": group} if group else {}
    if boxes:
        target["boxes"] = list(boxes)
    return {"type": "command", "v": 1, "t": now, "command_id": secrets.token_hex(8), "issued_at": now, "expires_at": now + life_s, "target": target, "action": action, "name": name}


def publish_update(client: AdminClient, key: SigningKey, *, group: str, kind: str, name: str, version: str, data: bytes, url_base: str | None = None, artifact_dir: Path | None = None, life_s: float = 7 * 86400.0) -> dict[str, Any]:
    """Publish one artifact to a group: chunks (unless served from ``url_base``), then the signed offer."""
    if not is_version(version):
        raise InputError(f"--version must be dotted numbers (1.5.0), got {version!r}")
    topic_base = f"{PREFIX}/group/{group}"
    art = describe(kind, name, version, data, topic_base=None if url_base else topic_base, url_base=url_base)
    if url_base:
        if artifact_dir is None:
            raise InputError("--url-base needs --artifact-dir: where to write the file to upload")
        artifact_dir.mkdir(parents=True, exist_ok=True)
        out = artifact_dir / art["sha256"]
        with atomic_write(out, "wb") as f:
            f.write(data)
    else:
        client.publish_many(chunks(art, data))
    offer = make_offer([art], group=group, life_s=life_s)
    client.publish(f"{topic_base}/offer", key.seal(offer))
    return offer


# -- the fleet table ----------------------------------------------------------------------------
def fleet_table(messages: list[tuple[str, bytes]]) -> dict[str, dict[str, Any]]:
    boxes: dict[str, dict[str, Any]] = {}
    for topic, payload in messages:
        parts = topic.split("/")
        if len(parts) != 5 or parts[:3] != ["parallax", "v1", "box"] or not payload:
            continue
        try:
            obj = json.loads(payload)
        except ValueError:
            continue
        if isinstance(obj, dict):
            boxes.setdefault(parts[3], {})[parts[4]] = obj
    return boxes


def format_table(boxes: dict[str, dict[str, Any]]) -> str:
    rows = [("box", "online", "versions", "last update", "health")]
    for box, info in sorted(boxes.items()):
        status = info.get("status", {}).get("state", "?")
        tel = info.get("telemetry", {})
        versions = " ".join(f"{k}={v}" for k, v in sorted(tel.get("versions", {}).items())) or "-"
        prog = info.get("progress", {})
        update = f"{prog.get('state', '-')}" + (f" ({prog['reason']})" if prog.get("reason") else "")
        health = []
        for key, fmt in (("cpu_percent", "cpu {:.0f}%"), ("temp_c", "{:.0f} C"), ("mem_used_mb", "mem {:.0f} MB"), ("calls", "{} calls"), ("calls_failed", "{} failed")):
            if isinstance(tel.get(key), (int, float)):
                health.append(fmt.format(tel[key]))
        if tel.get("throttled"):
            health.append(f"throttled {tel['throttled']:#x}")
        rows.append((box, status, versions, update[:60], ", ".join(health) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
