"""The model store: versions, the atomic current pointer, verification, the call lock, and the coach
following the store between calls (never mid-call, falling back when a new version is broken)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from firmware.audio.frames import FRAME_SAMPLES
from firmware.audio.live import LiveCoach
from firmware.audio.taps import TapPacket
from firmware.bus import EventBus
from firmware.cli.main import main as cli_main
from firmware.cli.run import session_opener
from firmware.coach.build import CoachBox
from firmware.config import Config, PathsConfig
from firmware.cues.pins import make_pin_factory
from firmware.errors import ModelError, StoreBusyError
from firmware.events import Event, Summary
from firmware.runtime import ModelFollower
from firmware.store import Manifest, ModelStore, read_manifest, write_manifest

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "models"


def _version(parent: Path, name: str, version: str, family: str = "whisper", payload: bytes | None = None) -> Path:
    """A version folder outside the store (what the fleet agent downloads), ready to stage."""
    src = parent / f"src-{name}-{version}"
    src.mkdir(parents=True)
    (src / "model.bin").write_bytes(payload if payload is not None else f"{name} {version}".encode() * 100)
    write_manifest(src, name=name, version=version, family=family, licence="test", files={"model": "model.bin"})
    return src


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# --- versions and the current pointer -------------------------------------------------------


def test_stage_activate_rollback(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    src1 = _version(tmp_path, "m", "1")
    before = {p.name: p.read_bytes() for p in src1.iterdir()}
    assert store.stage("m", "1", src1).version == "1"
    assert {p.name: p.read_bytes() for p in src1.iterdir()} == before  # the source is only read
    assert store.current("m") is None  # staging never switches
    assert store.activate("m", "1") is None
    store.stage("m", "2", _version(tmp_path, "m", "2"))
    assert store.activate("m", "2") == "1"
    assert (store.current("m"), store.previous("m"), store.versions("m")) == ("2", "1", ["1", "2"])
    # The pointer is a relative symlink (the store can move as a whole) to the version folder.
    assert os.readlink(store.root / "m" / "current") == "2"
    assert store.manifest("m").directory == store.root / "m" / "2"
    assert store.rollback("m") == "1"
    assert (store.current("m"), store.previous("m")) == ("1", "2")
    assert store.rollback("m") == "2"  # a rollback can itself be rolled back
    assert store.names() == ["m"]
    # Staging the same content again is a no-op; other content under an existing version is refused.
    store.stage("m", "1", src1)
    with pytest.raises(ModelError, match="already in the store with other content"):
        store.stage("m", "1", _version(tmp_path / "other", "m", "1", payload=b"different"))
    assert sorted(p.name for p in (store.root / "m").iterdir()) == ["1", "2", "current", "previous"]


def test_stage_refuses_a_damaged_or_mislabelled_source_and_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    src = _version(tmp_path, "m", "1")
    _flip_byte(src / "model.bin")
    with pytest.raises(ModelError, match=r"model\.bin is corrupt \(SHA-256 differs"):
        store.stage("m", "1", src)
    with pytest.raises(ModelError, match="its manifest says m 1, not m 2"):
        store.stage("m", "2", _version(tmp_path / "b", "m", "1"))
    assert store.versions("m") == [] and not (store.root / "m").exists()
    with pytest.raises(ModelError, match="invalid model version"):
        store.stage("m", "../x", src)
    with pytest.raises(ModelError, match="no current version"):
        store.manifest("m")
    with pytest.raises(ModelError, match="version 7 is not in the store"):
        store.activate("m", "7")
    with pytest.raises(ModelError, match="no previous version"):
        store.rollback("m")


def test_a_damaged_stored_copy_is_repaired_by_staging_it_again(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    src = _version(tmp_path, "m", "1")
    store.stage("m", "1", src)
    store.activate("m", "1")
    _flip_byte(store.root / "m" / "1" / "model.bin")
    with pytest.raises(ModelError, match="corrupt"):
        store.verify("m")
    store.stage("m", "1", src)
    store.verify("m")


def test_readers_always_see_a_whole_version_while_current_flips(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    for version in ("1", "2"):
        store.stage("m", version, _version(tmp_path, "m", version))
    store.activate("m", "1")
    seen: list[str | None] = []
    done = threading.Event()

    def read() -> None:
        reader = ModelStore(store.root)
        while not done.is_set():
            seen.append(reader.current("m"))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(300):
            store.activate("m", "2" if i % 2 == 0 else "1")
    finally:
        done.set()
        thread.join()
    assert seen and set(seen) <= {"1", "2"}  # never None: rename(2) replaces the link in one step


# --- verification: byte flips, missing files, missing pointers --------------------------------


def _device_like_store(tmp_path: Path) -> Path:
    """A store as the device holds it: the bundled intent model and playbook, two speech models."""
    store = ModelStore(tmp_path / "models")
    for name in ("intent", "playbook"):
        version = ModelStore(BUNDLED).current(name)
        assert version is not None
        store.stage(name, version, BUNDLED / name / version)
        store.activate(name, version)
    for name, family in (("whisper-tiny.en", "whisper"), ("silero-vad", "silero-vad")):
        store.stage(name, "1", _version(tmp_path, name, "1", family))
        store.activate(name, "1")
    return store.root


def _verify(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    config = tmp_path / "parallax.toml"
    config.write_text(f'[paths]\nmodels_dir = "{root}"\n', encoding="utf-8")
    status = cli_main(["--config", str(config), "models", "verify"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.splitlines()


def test_models_verify_covers_every_model_and_names_each_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _device_like_store(tmp_path)
    status, out, err = _verify(root, tmp_path, capsys)
    assert (status, err) == (0, [])
    assert out.splitlines() == [
        "intent 1.4.0 (current): ok", "playbook 1 (current): ok", "silero-vad 1 (current): ok", "whisper-tiny.en 1 (current): ok",
    ]  # fmt: skip

    _flip_byte(root / "intent" / "1.4.0" / "intent.tflite")  # one byte, same size
    (root / "whisper-tiny.en" / "1" / "model.bin").unlink()
    (root / "playbook" / "current").unlink()
    status, out, err = _verify(root, tmp_path, capsys)
    assert status == 2
    assert err[-1] == f"parallax: error: 3 problem(s) found in the model store {root}"
    problems = err[:-1]
    assert len(problems) == 3, problems
    assert problems[0].startswith("intent 1.4.0 (current): FAILED: model intent 1.4.0: intent.tflite is corrupt (SHA-256 differs")
    assert "`parallax models build --model intent --force`" in problems[0] and "`parallax models rollback intent`" in problems[0]
    assert problems[1] == (
        "playbook: FAILED: no current version (the `current` pointer is missing): `parallax models activate playbook VERSION` with one of 1"
    )
    assert problems[2].startswith("whisper-tiny.en 1 (current): FAILED: model whisper-tiny.en 1: model.bin is missing: rebuild")
    assert "playbook 1: ok" in out  # the version itself is intact


def test_models_verify_reports_a_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _device_like_store(tmp_path)
    shutil.rmtree(root / "silero-vad")
    status, _, err = _verify(root, tmp_path, capsys)
    assert status == 2 and err[0] == f"silero-vad: FAILED: not in {root}: run `parallax models build`"


def test_a_byte_flipped_intent_model_fails_to_load(tmp_path: Path) -> None:
    root = _device_like_store(tmp_path)
    _flip_byte(root / "intent" / "1.4.0" / "intent.tflite")
    with pytest.raises(ModelError, match="intent.tflite is corrupt"):
        ModelStore(root).load("intent")


def test_cli_activate_and_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _device_like_store(tmp_path)
    store = ModelStore(root)
    store.stage("whisper-tiny.en", "2", _version(tmp_path, "whisper-tiny.en", "2"))
    config = tmp_path / "parallax.toml"
    config.write_text(f'[paths]\nmodels_dir = "{root}"\n', encoding="utf-8")
    assert cli_main(["--config", str(config), "models", "activate", "whisper-tiny.en", "2"]) == 0
    assert "whisper-tiny.en: current 1 -> 2" in capsys.readouterr().out
    assert cli_main(["--config", str(config), "models", "rollback", "whisper-tiny.en"]) == 0
    assert "whisper-tiny.en: current 2 -> 1" in capsys.readouterr().out
    assert cli_main(["--config", str(config), "models", "rollback", "intent"]) == 2
    assert capsys.readouterr().err.startswith("parallax: error: model intent: no previous version to roll back to")


# --- the call lock, held by another process ---------------------------------------------------

_HOLDER = """
import sys
from pathlib import Path
from firmware.store import ModelStore
store = ModelStore(Path(sys.argv[1]))
if sys.argv[2] == "call":
    with store.call_lock() as lease:
        print("held" if lease.held else "not held", flush=True)
        sys.stdin.read()
else:
    with store.when_idle(timeout_s=5):
        print("held", flush=True)
        sys.stdin.read()
"""


def _holder(root: Path, kind: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root), kind], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.stdout.close()
    assert proc.wait(timeout=10) == 0


def test_a_switch_waits_for_the_call_another_process_holds(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    coach = _holder(store.root, "call")
    try:
        with pytest.raises(StoreBusyError, match="a call is running"):
            with store.when_idle(timeout_s=0.2, poll_s=0.02):
                pytest.fail("the agent got in during a call")
        # Other calls' shared holds do not exclude each other (a replay beside the live coach).
        with store.call_lock() as lease:
            assert lease.held
    finally:
        _release(coach)
    with store.when_idle(timeout_s=5):
        pass


def test_a_call_start_never_waits_behind_a_switch(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    agent = _holder(store.root, "idle")
    try:
        lease = store.acquire_call(wait_s=0.005)
        # It gave up after its few ms instead of queueing: the call runs on what is loaded.
        assert not lease.held and lease.waited_s >= 0.005
        lease.release()
    finally:
        _release(agent)
    with store.call_lock() as lease:
        assert lease.held


# --- the coach follows the store between calls ------------------------------------------------


class FakeVad:
    onset_s = 0.1
    release_s = 0.2

    def accept(self, samples: np.ndarray) -> bool:
        return False


@dataclasses.dataclass
class FakeRecognizer:
    version: str
    name: str = "fake"

    def transcribe(self, samples: np.ndarray) -> str:
        return ""


def _fake_loaders(loaded: list[str]):  # type: ignore[no-untyped-def]
    """Stand-ins for the engines (the real playbook loader stays): each checks the files like the real ones."""

    def recognizer(manifest: Manifest) -> FakeRecognizer:
        manifest.verify()
        loaded.append(manifest.label)
        return FakeRecognizer(manifest.version)

    def vad(manifest: Manifest):  # type: ignore[no-untyped-def]
        manifest.verify()
        return FakeVad

    return {"recognizer": recognizer, "vad": vad, "intent": lambda manifest: None}


def _playbook_version(tmp_path: Path, version: str, name: str) -> Path:
    src = tmp_path / f"playbook-{version}"
    src.mkdir()
    text = (BUNDLED / "playbook" / "current" / "playbook.toml").read_text(encoding="utf-8")
    book = read_manifest(BUNDLED / "playbook" / "current")
    assert 'name = "' in text
    (src / "playbook.toml").write_text(text.replace(f'name = "', f'name = "{name} ', 1), encoding="utf-8")
    write_manifest(src, name="playbook", version=version, family="playbook", licence=book.licence, files={"playbook": "playbook.toml"})
    return src


def _packet(call_id: int, seq: int, active: bool = True) -> TapPacket:
    silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)
    t = seq * FRAME_SAMPLES / 16000
    return TapPacket(seq=seq, stream_t=t, call_id=call_id if active else 0, call_t=t, call_active=active,
                     rep_present=True, buyer_present=True, rep=silence, buyer=silence)  # fmt: skip


def _summaries(events: list[Event]) -> list[Summary]:
    return [e for e in events if isinstance(e, Summary)]


def test_live_coach_picks_up_new_versions_only_at_the_next_call(tmp_path: Path) -> None:
    root = _device_like_store(tmp_path)
    store = ModelStore(root)
    config = Config(paths=PathsConfig(models_dir=root, state_dir=tmp_path / "state"))
    loaded: list[str] = []
    follower = ModelFollower(config, store, loaders=_fake_loaders(loaded))
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    box = CoachBox(config, pin_factory=make_pin_factory("mock"))
    try:
        live = LiveCoach(session_opener(config, follower, box, bus), bus)
        for seq in range(50):  # call 1 starts on whisper 1 and playbook 1
            live.handle(_packet(1, seq))
        assert live.session is not None and live.session.session.session.engines.recognizer.version == "1"  # type: ignore[attr-defined]

        # Mid-call, new versions arrive: the agent stages them, but cannot switch during the call ...
        store.stage("whisper-tiny.en", "2", _version(tmp_path, "whisper-tiny.en", "2"))
        store.stage("playbook", "2", _playbook_version(tmp_path, "2", "Updated"))
        with pytest.raises(StoreBusyError):
            with store.when_idle(timeout_s=0.1, poll_s=0.02):
                pass
        # ... and even a writer that ignores the lock does not reach the running call.
        store.activate("whisper-tiny.en", "2")
        store.activate("playbook", "2")
        for seq in range(50, 100):
            live.handle(_packet(1, seq))
        live.handle(_packet(1, 100, active=False))
        first = _summaries(events)[-1]
        assert first.extra["versions"] == {"silero-vad": "1", "whisper-tiny.en": "1", "intent": "1.4.0", "playbook": "1"}
        assert "model_fallbacks" not in first.extra
        # The versions are among what the fleet may see of a summary.
        from firmware.outward import outward

        wire = outward("fleet", first)
        assert wire is not None and wire["versions"] == first.extra["versions"]
        assert loaded == ["whisper-tiny.en 1"]

        for seq in range(101, 150):  # call 2: the new versions, loaded at its start
            live.handle(_packet(2, seq))
        assert box.playbook.name.startswith("Updated ")
        live.end("test over")
        second = _summaries(events)[-1]
        assert second.extra["versions"] == {"silero-vad": "1", "whisper-tiny.en": "2", "intent": "1.4.0", "playbook": "2"}
        assert loaded == ["whisper-tiny.en 1", "whisper-tiny.en 2"]
    finally:
        box.close()
        store.close()


def test_a_broken_new_version_falls_back_and_every_call_says_why(tmp_path: Path) -> None:
    root = _device_like_store(tmp_path)
    store = ModelStore(root)
    config = Config(paths=PathsConfig(models_dir=root, state_dir=tmp_path / "state"))
    loaded: list[str] = []
    follower = ModelFollower(config, store, loaders=_fake_loaders(loaded))
    store.stage("whisper-tiny.en", "2", _version(tmp_path, "whisper-tiny.en", "2"))
    store.stage("playbook", "2", _playbook_version(tmp_path, "2", "Broken"))
    _flip_byte(root / "playbook" / "2" / "playbook.toml")  # damaged after staging (disk, a bad copy)
    with store.when_idle(timeout_s=1):
        store.activate("whisper-tiny.en", "2")
        store.activate("playbook", "2")
    for _ in range(2):  # the failed version is reported on every call, but loaded only once
        engines, lease = follower.start_call()
        lease.release()
        assert engines.versions == {"silero-vad": "1", "whisper-tiny.en": "2", "intent": "1.4.0", "playbook": "1"}
        assert len(engines.fallbacks) == 1
        assert engines.fallbacks[0].startswith("playbook 2 failed to load, call ran on 1: model playbook 2: playbook.toml is corrupt")
        assert engines.playbook is not None and not engines.playbook.name.startswith("Broken")
    # Rolling back clears the report.
    with store.when_idle(timeout_s=1):
        store.rollback("playbook")
    engines, lease = follower.start_call()
    lease.release()
    assert engines.fallbacks == () and engines.versions["playbook"] == "1"
    store.close()


def test_a_broken_current_at_start_up_runs_on_the_previous_version(tmp_path: Path) -> None:
    root = _device_like_store(tmp_path)
    store = ModelStore(root)
    store.stage("whisper-tiny.en", "2", _version(tmp_path, "whisper-tiny.en", "2"))
    store.activate("whisper-tiny.en", "2")
    (root / "whisper-tiny.en" / "2" / "model.bin").unlink()
    config = Config(paths=PathsConfig(models_dir=root, state_dir=tmp_path / "state"))
    follower = ModelFollower(config, store, loaders=_fake_loaders([]))
    assert follower.engines.versions["whisper-tiny.en"] == "1"
    assert "whisper-tiny.en 2 failed to load, call ran on 1: model whisper-tiny.en 2: model.bin is missing" in follower.engines.fallbacks[0]
    # With nothing to fall back to, the coach does not start: one clear line.
    shutil.rmtree(root / "whisper-tiny.en" / "1")
    with pytest.raises(ModelError, match="model.bin is missing"):
        ModelFollower(config, store, loaders=_fake_loaders([]))


def test_a_call_that_finds_the_store_busy_runs_on_what_is_loaded(tmp_path: Path) -> None:
    root = _device_like_store(tmp_path)
    store = ModelStore(root)
    config = Config(paths=PathsConfig(models_dir=root, state_dir=tmp_path / "state"))
    follower = ModelFollower(config, store, loaders=_fake_loaders([]))
    store.stage("whisper-tiny.en", "2", _version(tmp_path, "whisper-tiny.en", "2"))
    agent = _holder(root, "idle")
    try:
        store.activate("whisper-tiny.en", "2")  # the agent's switch, mid-way
        engines, lease = follower.start_call()
        assert not lease.held
        assert engines.versions["whisper-tiny.en"] == "1"
        assert engines.fallbacks == ("model store busy at call start: versions not checked",)
        assert not lease.try_hold()  # still the agent's
    finally:
        _release(agent)
    # Once the switch is over the call holds the lock after all: the agent now waits for its end.
    assert lease.try_hold() and lease.held
    with pytest.raises(StoreBusyError):
        with store.when_idle(timeout_s=0.1, poll_s=0.02):
            pass
    lease.release()
    engines, lease = follower.start_call()
    lease.release()
    assert engines.versions["whisper-tiny.en"] == "2" and engines.fallbacks == ()
    store.close()


def test_build_installs_the_bundled_models_into_a_store_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The device: the checkout under /opt is read-only, the store is /var/lib/parallax/models.
    root = tmp_path / "var-lib-models"
    config = tmp_path / "parallax.toml"
    config.write_text(f'[paths]\nmodels_dir = "{root}"\n', encoding="utf-8")
    assert cli_main(["--config", str(config), "models", "build", "--model", "intent", "--model", "playbook"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.partition(" (")[0] for line in lines] == ["intent: installed", "playbook: installed"]
    store = ModelStore(root)
    assert store.current("intent") == ModelStore(BUNDLED).current("intent")
    store.verify("intent")
    store.verify("playbook")
    assert cli_main(["--config", str(config), "models", "build", "--model", "intent"]) == 0
    assert capsys.readouterr().out == "intent: up to date\n"
    # A fleet-pushed current is the store's choice: a rerun of the set-up does not undo it.
    store.stage("playbook", "9", _playbook_version(tmp_path, "9", "Pushed"))
    store.activate("playbook", "9")
    assert cli_main(["--config", str(config), "models", "build", "--model", "playbook"]) == 0
    assert store.current("playbook") == "9"
    capsys.readouterr()


def test_the_boards_configuration_puts_the_store_in_writable_state() -> None:
    from firmware.config import load_config

    config = load_config(REPO / "board" / "parallax.toml")
    assert config.paths.resolve(config.paths.models_dir) == Path("/var/lib/parallax/models")
    assert Config().paths.resolve(Config().paths.models_dir) == REPO / "models"  # a checkout: its own models/


def test_in_the_checkout_a_damaged_committed_model_says_restore_it_from_git(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import firmware.provision.build

    root = _device_like_store(tmp_path)
    monkeypatch.setattr(firmware.provision.build, "BUNDLED_ROOT", root)  # this store is "the checkout"
    _flip_byte(root / "playbook" / "1" / "playbook.toml")
    status, _, err = _verify(root, tmp_path, capsys)
    assert status == 2
    assert err[0] == (
        "playbook 1 (current): FAILED: model playbook 1: playbook.toml is corrupt (SHA-256 differs from its manifest): "
        "restore it (`git checkout -- models/playbook`)"
    )


def test_any_failure_of_a_new_version_keeps_the_coach_on_the_old_one(tmp_path: Path) -> None:
    root = _device_like_store(tmp_path)
    store = ModelStore(root)
    config = Config(paths=PathsConfig(models_dir=root, state_dir=tmp_path / "state"))
    loaders = _fake_loaders([])
    real_recognizer = loaders["recognizer"]

    def picky(manifest: Manifest) -> FakeRecognizer:
        if manifest.version == "2":
            raise RuntimeError("engine refused the graph")  # not a ModelError: an engine's own failure
        return real_recognizer(manifest)

    follower = ModelFollower(config, store, loaders={**loaders, "recognizer": picky})
    store.stage("whisper-tiny.en", "2", _version(tmp_path, "whisper-tiny.en", "2"))
    store.activate("whisper-tiny.en", "2")
    engines, lease = follower.start_call()
    lease.release()
    assert engines.versions["whisper-tiny.en"] == "1"
    assert engines.fallbacks == (
        "whisper-tiny.en 2 failed to load, call ran on 1: model whisper-tiny.en 2 failed to load: RuntimeError: engine refused the graph",
    )
    # A pointer that is not a symlink any more (someone copied a folder over it) is reported too.
    (root / "playbook" / "current").unlink()
    (root / "playbook" / "current").mkdir()
    engines, lease = follower.start_call()
    lease.release()
    assert engines.versions["playbook"] == "1"
    assert any(f.startswith("playbook ? failed to load, call ran on 1: model playbook:") and "is not a symlink" in f for f in engines.fallbacks)
    store.close()


def test_a_store_without_a_lock_file_is_still_followed(tmp_path: Path) -> None:
    root = _device_like_store(tmp_path)
    config = Config(paths=PathsConfig(models_dir=root, state_dir=tmp_path / "state"))
    store = ModelStore(root)
    follower = ModelFollower(config, store, loaders=_fake_loaders([]))
    store.stage("whisper-tiny.en", "2", _version(tmp_path, "whisper-tiny.en", "2"))
    store.activate("whisper-tiny.en", "2")
    store._lock_file = lambda: None  # type: ignore[method-assign]  # as when the store's folder is read-only
    engines, lease = follower.start_call()
    assert not lease.held and not lease.busy
    assert engines.versions["whisper-tiny.en"] == "2" and engines.fallbacks == ()


def test_a_live_call_started_during_a_switch_takes_the_lock_at_its_next_frame(tmp_path: Path) -> None:
    root = _device_like_store(tmp_path)
    store = ModelStore(root)
    config = Config(paths=PathsConfig(models_dir=root, state_dir=tmp_path / "state"))
    follower = ModelFollower(config, store, loaders=_fake_loaders([]))
    bus = EventBus()
    box = CoachBox(config, pin_factory=make_pin_factory("mock"))
    try:
        live = LiveCoach(session_opener(config, follower, box, bus), bus)
        agent = _holder(root, "idle")
        try:
            live.handle(_packet(1, 0))
            lease = live.session.lease  # type: ignore[union-attr]
            assert lease.busy and not lease.held
        finally:
            _release(agent)
        live.handle(_packet(1, 1))
        assert lease.held
        live.end("test over")
        assert not lease.held  # released with the call
    finally:
        box.close()
        store.close()
