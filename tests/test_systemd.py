"""systemd supervision: the notify protocol, and watchdog pings that stop when a main loop stalls.

systemd restarts a ``Type=notify`` unit whose ``WATCHDOG=1`` pings stop for ``WatchdogSec``; these
tests play systemd's part with a datagram socket of their own (``$NOTIFY_SOCKET``) and check that
the pings come from each process's main loop: they stop while the loop is stuck (the coach's
loop blocked in a session, the bridge's audio thread no longer cycling) and resume after.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from firmware.audio.frames import FRAME_SAMPLES, CallFrame
from firmware.audio.live import LiveCoach, run_live
from firmware.audio.service import supervise
from firmware.audio.taps import TapPacket
from firmware.bus import EventBus
from firmware.systemd import Notifier


class FakeSystemd:
    """The receiving end of $NOTIFY_SOCKET: records every message with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def count(self, field: str) -> int:
        with self._lock:
            return sum(1 for _, m in self.messages if field in m.split("\n"))

    def wait_for(self, field: str, n: int = 1, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count(field) >= n:
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    # AF_UNIX paths are limited to 107 bytes: a short directory under /tmp
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="pxsd-", dir="/tmp"))
    fake = FakeSystemd(folder / "notify")
    yield fake
    fake.close()
    (folder / "notify").unlink(missing_ok=True)
    folder.rmdir()


def env_for(fake: FakeSystemd, watchdog_ms: int) -> dict[str, str]:
    return {"NOTIFY_SOCKET": str(fake.path), "WATCHDOG_USEC": str(watchdog_ms * 1000)}


def test_notifier_speaks_the_protocol(systemd: FakeSystemd) -> None:
    clock = [0.0]
    notifier = Notifier(env_for(systemd, 2000), clock=lambda: clock[0])
    assert notifier.enabled and notifier.watchdog_s == 2.0
    assert notifier.ready("serving")
    assert notifier.kick()  # first ping at once
    assert not notifier.kick()  # then at most every WatchdogSec / 2
    clock[0] = 0.99
    assert not notifier.kick()
    clock[0] = 1.0
    assert notifier.kick()
    assert notifier.stopping()
    assert systemd.wait_for("STOPPING=1")
    notifier.close()
    assert [m for _, m in systemd.messages] == ["READY=1\nSTATUS=serving", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_notifier_is_a_no_op_outside_systemd_or_for_another_pid(systemd: FakeSystemd) -> None:
    outside = Notifier({})
    assert not outside.enabled and not outside.ready() and not outside.kick()
    other = Notifier({**env_for(systemd, 1000), "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_s is None and not other.kick()  # the watchdog is another process's
    assert other.ready()  # but it may still report readiness
    other.close()
    broken = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify", "WATCHDOG_USEC": "1000000"})
    assert not broken.kick()  # an unreachable socket never raises
    broken.close()


def test_abstract_socket_address() -> None:
    name = f"pxsd-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        notifier.close()
        assert server.recv(100) == b"READY=1"


# --- the coach process's main loop (parallax run) ---------------------------------------------


class PacedReader:
    """A tap reader that hands out one call's packets every few milliseconds, forever."""

    def __init__(self) -> None:
        self.seq = 0

    def receive(self, timeout_s: float) -> TapPacket | None:
        time.sleep(0.005)
        self.seq += 1
        samples = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        return TapPacket(seq=self.seq, stream_t=self.seq * 0.02, call_id=1, call_t=self.seq * 0.02, call_active=True,
                         rep_present=True, buyer_present=True, rep=samples, buyer=samples)


class StallableSession:
    """A call session whose ``feed`` can be made to hang, as a wedged recogniser would."""

    def __init__(self) -> None:
        self.stall = threading.Event()
        self.stalled = threading.Event()
        self.release = threading.Event()

    @property
    def now(self) -> float:
        return 0.0

    def feed(self, frame: CallFrame) -> None:
        if self.stall.is_set():
            self.stalled.set()
            self.release.wait(10)
            self.stall.clear()

    def end_call(self, extra: dict[str, object] | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def test_coach_loop_pings_stop_while_it_is_stuck_and_resume_after(systemd: FakeSystemd) -> None:
    session = StallableSession()
    coach = LiveCoach(lambda call_id: session, EventBus())
    notifier = Notifier(env_for(systemd, 100))  # WatchdogSec=100ms: a ping every 50 ms
    stop = threading.Event()
    worker = threading.Thread(target=run_live, args=(PacedReader(), coach, stop), kwargs={"on_tick": notifier.kick})
    worker.start()
    try:
        assert systemd.wait_for("WATCHDOG=1", 3), "the running loop pings"
        session.stall.set()
        assert session.stalled.wait(5)
        during = systemd.count("WATCHDOG=1")
        time.sleep(0.5)  # five watchdog periods: systemd would have killed the process by now
        assert systemd.count("WATCHDOG=1") == during, "a stuck loop must not ping"
        session.release.set()
        assert systemd.wait_for("WATCHDOG=1", during + 2), "pings resume with the loop"
    finally:
        session.release.set()
        stop.set()
        worker.join(5)
        notifier.close()
    assert not worker.is_alive()


# --- the bridge process's main loop (parallax bridge) -----------------------------------------


class FakeBridge:
    """What :func:`supervise` watches: an audio thread's cycle counter that can freeze."""

    class config:  # noqa: N801  (attribute access only)
        cycle_s = 0.004

    def __init__(self) -> None:
        self.cycles = 0
        self.running = True
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.004):
            if not self.frozen.is_set():
                self.cycles += 1

    def stats(self) -> dict[str, int]:
        return {"cycles": self.cycles}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def test_bridge_loop_pings_only_while_the_audio_thread_cycles(systemd: FakeSystemd) -> None:
    bridge = FakeBridge()
    notifier = Notifier(env_for(systemd, 100))
    stop = threading.Event()
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(supervise(bridge, stop, notifier, poll_s=0.02)),  # type: ignore[arg-type]
    )
    worker.start()
    try:
        assert systemd.wait_for("READY=1")
        assert systemd.wait_for("WATCHDOG=1", 3)
        bridge.frozen.set()  # the audio thread wedges; the main loop itself still runs
        time.sleep(0.1)
        during = systemd.count("WATCHDOG=1")
        time.sleep(0.5)
        assert systemd.count("WATCHDOG=1") == during, "a stalled audio thread must stop the pings"
        bridge.frozen.clear()
        assert systemd.wait_for("WATCHDOG=1", during + 2)
        bridge.running = False  # the audio thread died: the loop exits 1 for Restart= to act
        worker.join(5)
        assert result == [1]
    finally:
        stop.set()
        worker.join(5)
        bridge.stop()
        notifier.close()


def test_bridge_process_notifies_ready_watchdog_and_stopping(systemd: FakeSystemd, tmp_path: Path) -> None:
    """The real `parallax bridge` process (no audio devices: paced by its timer) under a fake systemd;
    SIGSTOP freezes it whole and the pings stop, SIGTERM ends it with STOPPING=1."""
    config = tmp_path / "parallax.toml"
    config.write_text(
        "[bridge]\n"
        'headset_capture = "no_such_headset_in"\nheadset_playback = "no_such_headset_out"\n'
        'host_capture = "no_such_host_in"\nhost_playback = "no_such_host_out"\n'
        f'tap_socket = "{tmp_path}/taps.sock"\ncall_state_file = "{tmp_path}/call_state.json"\n'
        "sched_fifo = false\nreopen_initial_s = 0.05\nreopen_max_s = 0.2\n"
    )
    env = {**os.environ, **env_for(systemd, 1000), "ALSA_CONFIG_PATH": "/usr/share/alsa/alsa.conf"}
    proc = subprocess.Popen([sys.executable, "-m", "firmware", "--config", str(config), "bridge"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert systemd.wait_for("READY=1", timeout_s=30)
        assert systemd.wait_for("WATCHDOG=1", 2, timeout_s=10)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        during = systemd.count("WATCHDOG=1")
        time.sleep(1.5)
        assert systemd.count("WATCHDOG=1") == during
        proc.send_signal(signal.SIGCONT)
        assert systemd.wait_for("WATCHDOG=1", during + 1, timeout_s=10)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert systemd.wait_for("STOPPING=1")
    assert "Traceback" not in err


@pytest.mark.model
def test_coach_process_notifies_ready_after_loading_then_pings_and_stops(
    systemd: FakeSystemd, tmp_path: Path, models_dir: Path
) -> None:
    """The real `parallax run`: READY=1 only once its models are loaded and the tap socket bound,
    WATCHDOG=1 from the idle tap loop, STOPPING=1 on SIGTERM."""
    config = tmp_path / "parallax.toml"
    config.write_text(f'[cues]\npin_factory = "mock"\n[paths]\nstate_dir = "{tmp_path}"\n')
    sock = Path(systemd.path).parent / "taps.sock"
    env = {**os.environ, **env_for(systemd, 400)}
    proc = subprocess.Popen([sys.executable, "-m", "firmware", "--config", str(config), "run", "--socket", str(sock)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert systemd.wait_for("READY=1", timeout_s=120), proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        assert sock.exists()  # ready means serving: the socket is bound
        assert systemd.wait_for("WATCHDOG=1", 3, timeout_s=10)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sock.unlink(missing_ok=True)
    assert proc.returncode == 0, err
    assert systemd.wait_for("STOPPING=1")
    assert "Traceback" not in err


class FakeAgent:
    """Stands in for firmware.fleet.agent.Agent: its threads live until ``die`` is called."""

    def __init__(self) -> None:
        self.dead = threading.Event()

    def alive(self) -> bool:
        return not self.dead.is_set()


def test_agent_loop_pings_while_its_threads_live_and_exits_when_one_dies(systemd: FakeSystemd) -> None:
    from firmware.cli.agent import serve

    agent, stop = FakeAgent(), threading.Event()
    notifier = Notifier(env_for(systemd, watchdog_ms=100))
    result: list[bool] = []
    loop = threading.Thread(target=lambda: result.append(serve(agent, stop, notifier, poll_s=0.02)))
    loop.start()
    time.sleep(0.4)
    pings = systemd.count("WATCHDOG=1")
    assert pings >= 2, "a live agent keeps the watchdog fed"
    agent.dead.set()
    loop.join(timeout=5)
    assert result == [False], "a dead agent thread ends the main loop, so systemd restarts the process"
    settled = systemd.count("WATCHDOG=1")
    time.sleep(0.3)
    assert systemd.count("WATCHDOG=1") == settled, "no pings once a thread died"

    stop.set()  # a stopped agent (SIGTERM) ends the loop cleanly
    assert serve(FakeAgent(), stop, notifier, poll_s=0.02) is True
    notifier.close()
