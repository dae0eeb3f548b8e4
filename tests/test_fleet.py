"""The fleet link against a real mosquitto: signed updates end to end, and everything that must fail.

One broker for the module (certificates made at test time); each test takes its own boxes, so
retained messages of one test never reach another. Agents run in this process unless a test kills
them, then they are `python -m firmware agent` processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_support import Broker, Client, Progress, intent_model, seed_store
from firmware.fleet import admin
from firmware.fleet.agent import Agent
from firmware.fleet.config import FleetConfig
from firmware.fleet.signing import SigningKey
from firmware.fleet.storeadapter import current_version, open_store

BOXES = {f"box-{i:02d}": "emea" for i in range(1, 25)} | {"box-apac": "apac"}
SMALL_CHUNK = 16384  # small chunks so a 92 KB model is six chunks and transfers can be cut between them


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker(tmp_path_factory.mktemp("fleet-broker"), BOXES) as b:
        yield b


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def ops(broker: Broker) -> Iterator[admin.AdminClient]:
    conn = admin.Connection(broker.host, broker.port, *broker.cert("admin-ops"))
    client = admin.AdminClient(conn)
    yield client
    for group in ("emea", "apac"):  # no retained offer or command outlives its test
        client.publish(f"parallax/v1/group/{group}/offer", b"")
        client.publish(f"parallax/v1/group/{group}/cmd", b"")
    client.close()


_free = iter(sorted(b for b, g in BOXES.items() if g == "emea"))


@dataclasses.dataclass
class Box:
    id: str
    root: Path
    config: FleetConfig

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def store_dir(self) -> Path:
        return self.root / "state" / "models"

    def store(self) -> Any:
        return open_store(self.store_dir)

    def current(self, name: str = "intent") -> str | None:
        return current_version(self.store(), name)


def new_box(broker: Broker, key: SigningKey, tmp_path: Path, **overrides: Any) -> Box:
    box_id = next(_free)
    root = tmp_path / box_id
    ca, cert, k = broker.cert(box_id)
    cfg = FleetConfig(broker_host=broker.host, broker_port=broker.port, box_id=box_id, group="emea", ca_file=ca, cert_file=cert, key_file=k,
                      admin_keys=(key.public_line,), telemetry_s=1.0, watch_calls=0, chunk_timeout_s=2.0, **overrides)
    box = Box(box_id, root, cfg)
    seed_store(box.store(), root)
    return box


def start(box: Box) -> Agent:
    agent = Agent(box.config, box.state_dir)
    agent.start()
    assert agent.wait_connected(10)
    return agent


def model_update(tmp_path: Path, version: str, golden: dict[str, Any] | None = None) -> bytes:
    return admin.model_tar(intent_model(tmp_path / f"intent-{version}-{time.monotonic_ns()}", golden))


def offer_to(ops: admin.AdminClient, key: SigningKey, box: Box, kind: str, name: str, version: str, data: bytes, *, chunk_bytes: int = SMALL_CHUNK, publish_chunks: bool = True, **offer_kw: Any) -> dict[str, Any]:
    base = f"parallax/v1/box/{box.id}"
    art = admin.describe(kind, name, version, data, topic_base=base, url_base=None, chunk_bytes=chunk_bytes)
    if publish_chunks:
        ops.publish_many(admin.chunks(art, data))
    offer = admin.make_offer([art], boxes=[box.id], **offer_kw)
    ops.publish(f"{base}/offer", key.seal(offer))
    return offer


def test_happy_path_model(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path)
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        offer_to(ops, key, box, "model", "intent", "1.5.0", model_update(tmp_path, "1.5.0"))
        progress.wait_for("applied")
        assert progress.states()[:2] == ["offered", "downloading"]
        for state in ("verifying", "staged", "waiting_for_idle"):
            assert state in progress.states()
        assert box.current("intent") == "1.5.0"
        box.store().verify("intent", "1.5.0")
    finally:
        agent.stop()
        progress.close()
