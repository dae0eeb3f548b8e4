"""The fleet link against a real mosquitto: signed updates end to end, and everything that must fail.

One broker for the module (certificates made at test time); each test takes its own boxes, so
retained messages of one test never reach another. Agents run in this process unless a test kills
them, then they are `python -m firmware agent` processes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_support import GOLDEN, REPO, Broker, Client, Progress, intent_model, seed_store
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


KILL_BOXES = ("box-21", "box-22", "box-23", "box-24")  # the kill -9 test's, one crash point at a time each
_free = iter(sorted(b for b, g in BOXES.items() if g == "emea" and b not in KILL_BOXES))


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
    settings: dict[str, Any] = {"admin_keys": (key.public_line,), "telemetry_s": 1.0, "watch_calls": 0, "chunk_timeout_s": 2.0} | overrides
    cfg = FleetConfig(broker_host=broker.host, broker_port=broker.port, box_id=box_id, group="emea", ca_file=ca, cert_file=cert, key_file=k, **settings)
    box = Box(box_id, root, cfg)
    seed_store(box.store(), root)
    return box


def start(box: Box) -> Agent:
    agent = Agent(box.config, box.state_dir, box.store())
    agent.start()
    assert agent.wait_connected(10)
    return agent


def model_update(tmp_path: Path, version: str, golden: dict[str, Any] | None = None) -> bytes:
    return admin.model_tar(intent_model(tmp_path / f"intent-{version}-{time.monotonic_ns()}", golden, version))


def offer_to(ops: admin.AdminClient, key: SigningKey, box: Box, kind: str, name: str, version: str, data: bytes, *, chunk_bytes: int = SMALL_CHUNK, publish_chunks: bool = True, **offer_kw: Any) -> dict[str, Any]:
    base = f"parallax/v1/box/{box.id}"
    art = admin.describe(kind, name, version, data, topic_base=base, url_base=None, chunk_bytes=chunk_bytes)
    if publish_chunks:
        ops.publish_many(admin.chunks(art, data))
    offer = admin.make_offer([art], boxes=[box.id], **offer_kw)
    ops.publish(f"{base}/offer", key.seal(offer))
    return offer


def retained(broker: Broker, topic: str) -> dict[str, Any] | None:
    c = Client(broker, "admin-ops")
    try:
        c.subscribe(topic)
        got = [json.loads(p) for _, p, _ in c.collect(0.4) if p]
    finally:
        c.close()
    return got[-1] if got else None


def test_happy_path_model(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path)
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        assert retained(broker, f"parallax/v1/box/{box.id}/status")["state"] == "online"
        offer_to(ops, key, box, "model", "intent", "1.5.0", model_update(tmp_path, "1.5.0"))
        progress.wait_for("applied")
        states = progress.states()
        assert states[:2] == ["offered", "downloading"]
        assert [s for s in states if s != "downloading"] == ["offered", "verifying", "staged", "waiting_for_idle", "applied"]
        assert box.current("intent") == "1.5.0"
        box.store().verify("intent", "1.5.0")
        time.sleep(1.2)  # one telemetry period
        telemetry = retained(broker, f"parallax/v1/box/{box.id}/telemetry")
        assert telemetry["versions"]["intent"] == "1.5.0" and telemetry["versions"]["playbook"] == "1"
        assert telemetry["uptime_s"] > 0 and 0 <= telemetry["mem_used_mb"] <= telemetry["mem_total_mb"]
    finally:
        agent.stop()
        progress.close()
    assert retained(broker, f"parallax/v1/box/{box.id}/status")["state"] == "offline"


def test_happy_path_playbook(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path)
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        data = (REPO / "models" / "playbook" / "1" / "playbook.toml").read_bytes()
        offer_to(ops, key, box, "playbook", "playbook", "1.1.0", data + b"\n# 1.1.0\n", chunk_bytes=4096)
        progress.wait_for("applied")
        assert box.current("playbook") == "1.1.0" and box.current("intent") == "1.4.0"
        assert (box.store_dir / "playbook" / "1.1.0" / "playbook.toml").read_bytes().endswith(b"# 1.1.0\n")
    finally:
        agent.stop()
        progress.close()


def _refused(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path, publish: Any, reason: str, **box_kw: Any) -> Box:
    """Start a box, let ``publish(box)`` make an offer, and expect rejected(reason...) and no change."""
    box = new_box(broker, key, tmp_path, **box_kw)
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        publish(box)
        event = progress.wait_for("rejected", "applied")
        assert event["state"] == "rejected" and event["reason"].startswith(reason), event
        assert "applied" not in progress.states() and "staged" not in progress.states()
        assert box.current("intent") == "1.4.0" and box.store().versions("intent") == ["1.4.0"]
    finally:
        agent.stop()
        progress.close()
    return box


def test_tampered_chunk_is_refused(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    data = model_update(tmp_path, "1.5.0")

    def publish(box: Box) -> None:
        offer = offer_to(ops, key, box, "model", "intent", "1.5.0", data, publish_chunks=False)
        art = offer["artifacts"][0]
        chunks = admin.chunks(art, data)
        topic, good = chunks[3]
        chunks[3] = (topic, good[:100] + bytes([good[100] ^ 1]) + good[101:])  # one bit flipped
        ops.publish_many(chunks)

    box = _refused(broker, key, ops, tmp_path, publish, "corrupt: chunk 3")
    assert not list((box.state_dir / "fleet" / "downloads").glob("*.part"))


def test_bad_signature_is_refused(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    data = model_update(tmp_path, "1.5.0")

    def publish(box: Box) -> None:
        art = admin.describe("model", "intent", "1.5.0", data, topic_base=f"parallax/v1/box/{box.id}", url_base=None, chunk_bytes=SMALL_CHUNK)
        ops.publish_many(admin.chunks(art, data))
        sealed = json.loads(key.seal(admin.make_offer([art], boxes=[box.id])))
        payload = json.loads(base64.b64decode(sealed["payload"]))
        payload["artifacts"][0]["sha256"] = "0" * 64  # changed after signing
        sealed["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
        ops.publish(f"parallax/v1/box/{box.id}/offer", json.dumps(sealed).encode())

    _refused(broker, key, ops, tmp_path, publish, "bad signature")


def test_unknown_key_is_refused(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    stranger = SigningKey.generate()
    data = model_update(tmp_path, "1.5.0")

    def publish(box: Box) -> None:
        offer_to(ops, stranger, box, "model", "intent", "1.5.0", data)

    _refused(broker, key, ops, tmp_path, publish, f"unknown key: {stranger.key_id}")


def test_downgrade_is_refused(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    data = model_update(tmp_path, "1.3.9")
    _refused(broker, key, ops, tmp_path, lambda box: offer_to(ops, key, box, "model", "intent", "1.3.9", data), "downgrade: intent 1.3.9 is not newer than 1.4.0")


def test_a_rolled_back_version_is_not_offered_again(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    """Anti-rollback keeps the floor: after going back to 1.4.0, 1.4.5 (below the 1.5.0 once accepted) is refused."""
    box = new_box(broker, key, tmp_path)
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        offer_to(ops, key, box, "model", "intent", "1.5.0", model_update(tmp_path, "1.5.0"))
        progress.wait_for("applied")
        ops.publish(f"parallax/v1/box/{box.id}/cmd", key.seal(admin.make_command("rollback", "intent", boxes=[box.id])))
        assert progress.wait_for("rolled_back")["version"] == "1.4.0"
        assert box.current("intent") == "1.4.0"
        offer_to(ops, key, box, "model", "intent", "1.4.5", model_update(tmp_path, "1.4.5"))
        assert progress.wait_for("rejected")["reason"] == "downgrade: intent 1.4.5 is not newer than 1.5.0"
    finally:
        agent.stop()
        progress.close()


def test_expired_offer_is_refused(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    data = model_update(tmp_path, "1.5.0")
    long_ago = time.time() - 3 * 86400
    _refused(broker, key, ops, tmp_path, lambda box: offer_to(ops, key, box, "model", "intent", "1.5.0", data, now=long_ago, life_s=86400), "expired")


def test_offer_for_another_box_is_refused(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    data = model_update(tmp_path, "1.5.0")

    def publish(box: Box) -> None:
        art = admin.describe("model", "intent", "1.5.0", data, topic_base=f"parallax/v1/box/{box.id}", url_base=None, chunk_bytes=SMALL_CHUNK)
        ops.publish(f"parallax/v1/box/{box.id}/offer", key.seal(admin.make_offer([art], boxes=["box-elsewhere"])))

    _refused(broker, key, ops, tmp_path, publish, "not for this box")


def test_failing_self_test_never_goes_live(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    wrong = {"min_agreement": 1.0, "cases": [{"text": "that is way more than we budgeted", "speaker": "buyer", "intent": "next_step"}]}
    data = model_update(tmp_path, "1.5.0", golden=wrong)
    _refused(broker, key, ops, tmp_path, lambda box: offer_to(ops, key, box, "model", "intent", "1.5.0", data), "self-test failed: ValueError: 0 of 1 golden answers right")


def test_transfer_cut_and_resumed(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path)
    data = model_update(tmp_path, "1.5.0")
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        offer = offer_to(ops, key, box, "model", "intent", "1.5.0", data, publish_chunks=False)
        chunks = admin.chunks(offer["artifacts"][0], data)
        ops.publish_many(chunks[:3])
        deadline = time.monotonic() + 15
        while not any(e["state"] == "downloading" and e.get("bytes_done", 0) >= 3 * SMALL_CHUNK for e in progress.events):
            assert time.monotonic() < deadline, progress.events
            progress.settle(0.2)
    finally:
        agent.stop()  # the cut: the agent goes away with part of the artifact on disk
    cut_at = max(e.get("bytes_done", 0) for e in progress.events)
    assert 3 * SMALL_CHUNK <= cut_at < len(data)
    ops.publish_many(chunks[3:])
    before = len(progress.events)
    agent = start(box)
    try:
        progress.wait_for("applied")
        after = progress.events[before:]
        assert [e["state"] for e in after[:2]] == ["offered", "downloading"]
        assert after[1]["bytes_done"] == cut_at  # resumed from what was on disk, nothing fetched twice
        assert box.current("intent") == "1.5.0"
    finally:
        agent.stop()
        progress.close()


def test_an_offer_during_a_call_waits_for_the_calls_end(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path)
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        with box.store().call_lock():  # the coach holds this for a whole call
            offer_to(ops, key, box, "model", "intent", "1.5.0", model_update(tmp_path, "1.5.0"))
            progress.wait_for("waiting_for_idle")
            progress.settle(1.0)
            assert "applied" not in progress.states()
            assert box.current("intent") == "1.4.0"  # staged, not switched, while the call goes on
            assert "1.5.0" in box.store().versions("intent")
        progress.wait_for("applied", timeout=10)
        assert box.current("intent") == "1.5.0"
    finally:
        agent.stop()
        progress.close()


def test_stopping_while_waiting_for_a_call_switches_nothing_and_resumes(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path)
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        with box.store().call_lock():
            offer_to(ops, key, box, "model", "intent", "1.5.0", model_update(tmp_path, "1.5.0"))
            progress.wait_for("waiting_for_idle")
            started = time.monotonic()
            agent.stop()  # a call may last an hour: stop must not wait for it
            stop_s = time.monotonic() - started
            assert not any(t.is_alive() for t in agent._threads)
            assert box.current("intent") == "1.4.0" and "applied" not in progress.states()
            assert not (box.state_dir / "fleet" / "journal.json").exists()
        agent = start(box)  # the retained offer comes again; the staged version is reused
        progress.wait_for("applied")
        assert box.current("intent") == "1.5.0"
        assert stop_s < 5.0
    finally:
        agent.stop()
        progress.close()


class CoachSupervisor:
    """systemd's Restart=always for the coach stand-in (tests/fleet_coach_sim.py)."""

    def __init__(self, box: Box, crash_on: str | None) -> None:
        self.box, self.crash_on = box, crash_on
        self.exits: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.exits) < 8:
            cmd = [sys.executable, str(REPO / "tests" / "fleet_coach_sim.py"), str(self.box.store_dir), str(self.box.state_dir), "1"]
            done = subprocess.run(cmd + ([self.crash_on] if self.crash_on else []), capture_output=True, timeout=60)
            self.exits.append(done.returncode)
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_a_version_that_crashes_the_coach_is_rolled_back(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path, watch_calls=3, max_coach_restarts=1)
    assert subprocess.run([sys.executable, str(REPO / "tests" / "fleet_coach_sim.py"), str(box.store_dir), str(box.state_dir), "1"]).returncode == 0
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        offer_to(ops, key, box, "model", "intent", "1.5.0", model_update(tmp_path, "1.5.0"))
        progress.wait_for("applied")
        coach = CoachSupervisor(box, crash_on="1.5.0")  # 1.5.0 loads (it passed its self-test) but the coach dies on it
        try:
            event = progress.wait_for("rolled_back", timeout=90)
        finally:
            coach.stop()
        assert event["reason"].startswith("the coach restarted 2 times on intent 1.5.0"), event
        assert event["version"] == "1.4.0" and box.current("intent") == "1.4.0"
        assert coach.exits[:2] == [3, 3]
        # And on 1.4.0 the coach coaches again.
        sim = subprocess.run([sys.executable, str(REPO / "tests" / "fleet_coach_sim.py"), str(box.store_dir), str(box.state_dir), "1", "1.5.0"], capture_output=True, text=True)
        assert sim.returncode == 0 and sim.stdout.split() == ["objection_price", "next_step"]
    finally:
        agent.stop()
        progress.close()


def test_a_healthy_version_stays_after_the_watch(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path, watch_calls=2, max_coach_restarts=1)
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        offer_to(ops, key, box, "model", "intent", "1.5.0", model_update(tmp_path, "1.5.0"))
        progress.wait_for("applied")
        coach = CoachSupervisor(box, crash_on=None)
        deadline = time.monotonic() + 30
        while (box.state_dir / "fleet" / "journal.json").exists():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        coach.stop()
        assert "rolled_back" not in progress.states() and box.current("intent") == "1.5.0"
        assert set(coach.exits) == {0}
    finally:
        agent.stop()
        progress.close()


def test_a_thousand_malformed_payloads_cause_no_crash(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path)
    agent = start(box)
    rng = random.Random(15)
    good_art = admin.describe("model", "intent", "1.5.0", b"x" * 5000, topic_base=f"parallax/v1/box/{box.id}", url_base=None, chunk_bytes=4096)

    def junk(i: int) -> bytes:
        kind = i % 10
        if kind == 0:
            return rng.randbytes(rng.randrange(0, 300))
        if kind == 1:
            return json.dumps(rng.choice([[], 1, "x", None, {"type": "signed"}, {"type": "signed", "alg": "ed25519", "key_id": 1}])).encode()
        if kind == 2:
            return json.dumps({"type": "signed", "alg": "ed25519", "key_id": key.key_id, "payload": "%%%", "sig": "AA=="}).encode()
        if kind == 3:
            return b"{" * rng.randrange(1, 5000)  # deep nesting
        if kind == 4:
            return key.seal_bytes(rng.randbytes(50))  # signed, not JSON
        if kind == 5:
            return key.seal({"type": "update_offer", "update_id": f"u{i}", "issued_at": "now", "expires_at": 1, "target": {}, "artifacts": []})
        if kind == 6:
            bad = dict(good_art, chunk_sha256=good_art["chunk_sha256"][:1], size=rng.choice([-1, 0, 2**40, 5000]))
            return key.seal(admin.make_offer([bad], boxes=[box.id]))
        if kind == 7:
            return key.seal(admin.make_offer([dict(good_art, name="../../etc", kind="model")], boxes=[box.id]))
        if kind == 8:
            return key.seal({"type": "command", "command_id": f"c{i}", "issued_at": time.time(), "expires_at": time.time() + 60, "target": {"boxes": [box.id]}, "action": "rm -rf", "name": "intent"})
        return b"x" * rng.randrange(1, 2 << 20)  # up to 2 MiB

    try:
        for topic_kind in ("offer", "cmd"):
            ops.publish_many([(f"parallax/v1/box/{box.id}/{topic_kind}", junk(i)) for i in range(500)], retain=False)
        deadline = time.monotonic() + 30
        while agent._jobs.qsize() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(t.is_alive() for t in agent._threads)
        assert box.current("intent") == "1.4.0" and box.store().versions("intent") == ["1.4.0"]
        progress = Progress(broker, box.id)
        try:  # still listening, still applying a good offer
            offer_to(ops, key, box, "model", "intent", "1.5.0", model_update(tmp_path, "1.5.0"))
            progress.wait_for("applied")
        finally:
            progress.close()
    finally:
        agent.stop()


def test_broker_restart_mid_transfer(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    box = new_box(broker, key, tmp_path)
    data = model_update(tmp_path, "1.5.0")
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        offer = offer_to(ops, key, box, "model", "intent", "1.5.0", data, publish_chunks=False)
        chunks = admin.chunks(offer["artifacts"][0], data)
        ops.publish_many(chunks[:3])
        deadline = time.monotonic() + 15
        while not any(e.get("bytes_done", 0) >= 3 * SMALL_CHUNK for e in progress.events):
            assert time.monotonic() < deadline, progress.events
            progress.settle(0.2)
        connects = agent.connects
        progress.close()
        broker.restart()
        restarted = time.monotonic()
        while agent.connects == connects:
            assert time.monotonic() - restarted < 10, "the agent was not back within 10 s of the broker"
            time.sleep(0.05)
        back_s = time.monotonic() - restarted
        progress = Progress(broker, box.id)
        late = admin.AdminClient(admin.Connection(broker.host, broker.port, *broker.cert("admin-ops")))
        try:
            late.publish_many(chunks[3:])  # the chunks published before the restart were kept (persistence)
        finally:
            late.close()
        progress.wait_for("applied")
        assert box.current("intent") == "1.5.0"
        assert back_s < 10
    finally:
        agent.stop()
        progress.close()


# Every point of an apply where the kill test takes the agent down (firmware.fleet.crashpoint), in order.
CRASH_POINTS = (
    "accepted", "journal-fetching", "chunk-0", "chunk-2", "chunk-3", "chunk-5", "downloaded", "verified", "unpacked",
    "selftested", "staging", "staged", "journal-staged", "idle", "journal-switching", "activated-intent",
    "floor-saved", "journal-watching",
    # the health watch's rollback (the coach reports a failed call on the new version)
    "journal-rolling-back", "rolled-back-intent",
)  # fmt: skip


def _agent_config(box: Box, path: Path, watch_calls: int) -> Path:
    c = box.config
    path.write_text(
        f'[paths]\nstate_dir = "{box.state_dir}"\nmodels_dir = "{box.store_dir}"\n\n[fleet]\nbroker_host = "{c.broker_host}"\nbroker_port = {c.broker_port}\n'
        f'box_id = "{box.id}"\ngroup = "emea"\nca_file = "{c.ca_file}"\ncert_file = "{c.cert_file}"\nkey_file = "{c.key_file}"\n'
        f'admin_keys = ["{c.admin_keys[0]}"]\nwatch_calls = {watch_calls}\nmax_coach_restarts = 0\nchunk_timeout_s = 2.0\n'
    )
    return path


def _spawn(config: Path, crash_at: str | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("PARALLAX_FLEET_CRASH_AT", None)
    if crash_at:
        env["PARALLAX_FLEET_CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, "-m", "firmware", "--config", str(config), "agent"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _still_coaches(box: Box) -> None:
    """Exactly one complete intent version is current, and the coach runs a call on it."""
    from firmware.intent.classifier import IntentClassifier

    store = box.store()
    current = box.current("intent")
    assert current in ("1.4.0", "1.5.0")
    store.verify("intent")
    model = IntentClassifier(store.manifest("intent").directory)  # what the coach loads at its next call
    assert [model.classify(c["text"], "buyer").label for c in GOLDEN["cases"]] == [c["intent"] for c in GOLDEN["cases"]]


def _kill_run(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path, box_id: str, point: str, data: bytes) -> str:
    rollback = point in ("journal-rolling-back", "rolled-back-intent")
    root = tmp_path / point
    ca, cert, k = broker.cert(box_id)
    box = Box(box_id, root, FleetConfig(broker_host=broker.host, broker_port=broker.port, box_id=box_id, group="emea", ca_file=ca, cert_file=cert, key_file=k, admin_keys=(key.public_line,)))
    seed_store(box.store(), root)
    config = _agent_config(box, root / "parallax.toml", watch_calls=1 if rollback else 0)
    if rollback:
        from firmware.fleet.counters import CoachCounters

        CoachCounters(box.state_dir, {"intent": "1.4.0"}).write()  # the coach's baseline before the switch
    offer = offer_to(ops, key, box, "model", "intent", "1.5.0", data, publish_chunks=False)
    proc = _spawn(config, point)
    try:
        if rollback:
            deadline = time.monotonic() + 30
            while box.current("intent") != "1.5.0":
                assert time.monotonic() < deadline and proc.poll() is None, f"{point}: never applied"
                time.sleep(0.05)
            failed = CoachCounters(box.state_dir, {"intent": "1.5.0"})
            failed.call_ended(failed=True)
            failed.write()
        assert proc.wait(timeout=30) == -9, f"{point}: the agent was not killed there ({proc.stderr.read().decode()[-400:] if proc.stderr else ''})"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    _still_coaches(box)
    proc = _spawn(config, None)
    expected = "1.4.0" if rollback else "1.5.0"
    try:
        deadline = time.monotonic() + 30
        while (box.state_dir / "fleet" / "journal.json").exists() or box.current("intent") != expected or offer["update_id"] not in (box.state_dir / "fleet" / "state.json").read_text():
            assert time.monotonic() < deadline and proc.poll() is None, f"{point}: did not recover (current {box.current('intent')})"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    box.store().verify("intent")
    ops.publish(f"parallax/v1/box/{box_id}/offer", b"")
    return point


def test_agent_killed_at_every_point_of_an_apply(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = model_update(tmp_path, "1.5.0")
    for box_id in KILL_BOXES:  # the chunks once per box topic; every run offers them again under a new id
        art = admin.describe("model", "intent", "1.5.0", data, topic_base=f"parallax/v1/box/{box_id}", url_base=None, chunk_bytes=SMALL_CHUNK)
        ops.publish_many(admin.chunks(art, data))
    lanes = [CRASH_POINTS[i :: len(KILL_BOXES)] for i in range(len(KILL_BOXES))]

    def lane(i: int) -> list[str]:
        return [_kill_run(broker, key, ops, tmp_path, KILL_BOXES[i], point, data) for point in lanes[i]]

    with ThreadPoolExecutor(len(KILL_BOXES)) as pool:
        done = [p for result in pool.map(lane, range(len(KILL_BOXES))) for p in result]
    assert sorted(done) == sorted(CRASH_POINTS) and len(CRASH_POINTS) == 20


def test_https_artifact_with_a_cut_link_resumes_with_range(broker: Broker, key: SigningKey, ops: admin.AdminClient, tmp_path: Path) -> None:
    from fleet_rig import ArtifactServer

    box = new_box(broker, key, tmp_path, https_ca_file=broker.tls / "ca.crt")
    data = model_update(tmp_path, "1.5.0")
    folder = tmp_path / "cdn"
    folder.mkdir()
    server = ArtifactServer(folder, broker.tls, cut_after_bytes=40000)  # every response cut short
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        art = admin.describe("model", "intent", "1.5.0", data, topic_base=None, url_base=server.url_base, chunk_bytes=SMALL_CHUNK)
        (folder / art["sha256"]).write_bytes(data)
        ops.publish(f"parallax/v1/box/{box.id}/offer", key.seal(admin.make_offer([art], boxes=[box.id])))
        progress.wait_for("applied")
        assert box.current("intent") == "1.5.0"
        # Three cut responses, each resumed where the verified chunks end.
        assert server.requests[0] == "bytes=0-" and len(server.requests) >= 3
        assert all(r.startswith("bytes=") and int(r[6:-1]) % SMALL_CHUNK == 0 for r in server.requests)
    finally:
        agent.stop()
        progress.close()
        server.close()


def test_admin_cli_keygen_publish_status_rollback(broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from firmware.cli.main import main

    keys = tmp_path / "keys"
    assert main(["admin", "keygen", "--out", str(keys)]) == 0
    assert "admin_keys" in capsys.readouterr().out
    assert (keys / "signing.key").stat().st_mode & 0o777 == 0o600
    assert main(["admin", "keygen", "--out", str(keys)]) == 2  # never overwrites a key
    assert "not overwriting" in capsys.readouterr().err
    signing = SigningKey.load(keys / "signing.key")
    ca, cert, k = broker.cert("box-apac")
    box = Box("box-apac", tmp_path / "apac", FleetConfig(broker_host=broker.host, broker_port=broker.port, box_id="box-apac", group="apac", ca_file=ca, cert_file=cert, key_file=k, admin_keys=((keys / "signing.pub").read_text().strip(),), telemetry_s=0.5, watch_calls=0))
    seed_store(box.store(), box.root)
    conn = ["--broker", f"{broker.host}:{broker.port}", "--tls-dir", str(broker.tls), "--admin", "ops"]
    progress = Progress(broker, box.id)
    agent = start(box)
    try:
        playbook = tmp_path / "playbook.toml"
        playbook.write_bytes((REPO / "models" / "playbook" / "1" / "playbook.toml").read_bytes() + b"\n# 2.0.0\n")
        assert main(["admin", "publish", *conn, "--signing-key", str(keys / "signing.key"), "--group", "apac", "--playbook", str(playbook), "--version", "2.0.0"]) == 0
        assert "published update" in capsys.readouterr().out
        progress.wait_for("applied")
        assert box.current("playbook") == "2.0.0"
        time.sleep(1.0)
        assert main(["admin", "status", *conn, "--json", "--wait", "0.5"]) == 0
        table = json.loads(capsys.readouterr().out)
        assert table["box-apac"]["status"]["state"] == "online"
        assert table["box-apac"]["telemetry"]["versions"]["playbook"] == "2.0.0"
        assert table["box-apac"]["progress"]["state"] == "applied"
        assert main(["admin", "status", *conn, "--wait", "0.5"]) == 0
        assert "box-apac  online" in capsys.readouterr().out
        assert main(["admin", "rollback", *conn, "--signing-key", str(keys / "signing.key"), "--group", "apac", "--name", "playbook"]) == 0
        assert progress.wait_for("rolled_back")["version"] == "1"
        assert box.current("playbook") == "1"
        # Bad input: one line on stderr, exit 2, nothing published.
        capsys.readouterr()
        assert main(["admin", "publish", *conn, "--signing-key", str(tmp_path / "nope.key"), "--group", "apac", "--playbook", str(playbook), "--version", "3.0.0"]) == 2
        assert main(["admin", "publish", *conn, "--signing-key", str(keys / "signing.key"), "--group", "apac", "--playbook", str(playbook), "--version", "three"]) == 2
        assert main(["admin", "status", "--broker", f"{broker.host}:{broker.port}", "--tls-dir", str(tmp_path), "--wait", "0"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 3 and all(line.startswith("parallax: error: ") for line in err), err
    finally:
        agent.stop()
        progress.close()
        cleanup = admin.AdminClient(admin.Connection(broker.host, broker.port, *broker.cert("admin-ops")))
        cleanup.publish("parallax/v1/group/apac/offer", b"")
        cleanup.publish("parallax/v1/group/apac/cmd", b"")
        cleanup.close()
