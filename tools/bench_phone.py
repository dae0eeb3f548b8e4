#!/usr/bin/env python3
"""Benchmark the BLE phone link against the fake BlueZ (bleak's real backend on a private D-Bus).

    tools/bench_phone.py [--tips 300] [--calls 12]

1. Tip handed to the link -> written (20-byte chunks) and acknowledged by the app, one at a time
   and in a burst, with the fake's latency 0 (target: p95 <= 100 ms).
2. Phone back in range -> link up again, with the default backoff (target: <= 5 s), after
   absences of 0.3 to 8 s (the backoff grows while the phone is away, and the phone returns
   at every phase of the scan/backoff cycle).
3. The link's thread under a flat-out coach: the synthetic test call driven through the real
   coach as fast as it goes, with its events handed to the link (which streams them to the phone)
   against a coach whose events go nowhere: coach time per call, time spent inside
   ``PhoneLink.send`` on the coach's thread, and the lateness of a 10 ms periodic thread standing
   in for the audio thread (a "miss" is a wake-up more than 5 ms late: the bridge's period is 10 ms
   and its FIFO holds a few periods). This machine is not a Pi: compare the two columns, not the
   absolute times.

Prints tables, then one JSON object of the figures as the very last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from firmware.events import Event, Tip  # noqa: E402
from firmware.phone.config import PhoneConfig  # noqa: E402
from firmware.phone.link import PhoneLink  # noqa: E402
from firmware.phone.secret import BondedPhone, PairingStore  # noqa: E402
from firmware.testing.fakebluez import PrivateBus  # noqa: E402

PHONE = "AA:BB:CC:DD:EE:01"
BURST = 16


def wait(pred: Callable[[], bool], timeout: float = 30.0, step: float = 0.0005) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def tip(n: int) -> Tip:
    return Tip(t=float(n), tip_id=f"bench-{n}", call_id=1, moment="price_objection",
               text="Ask what budget they had in mind before you quote.", priority=2, ttl_s=30.0)  # fmt: skip


PERIODIC = r"""
import json, os, sys, time, select
try:  # as the bridge's audio thread is on the box
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50)); policy = "SCHED_FIFO"
except (AttributeError, PermissionError, OSError):
    policy = "SCHED_OTHER"
print(policy, flush=True)
period = 0.010; late = []; nxt = time.monotonic() + period
while not select.select([sys.stdin], [], [], 0)[0]:
    d = nxt - time.monotonic()
    if d > 0: time.sleep(d)
    late.append(max(0.0, (time.monotonic() - nxt) * 1000.0)); nxt += period
print(json.dumps(late), flush=True)
"""


class Periodic:
    """A 10 ms periodic loop in a process of its own (the bridge is its own process on the box),
    at SCHED_FIFO when allowed, as the bridge's audio thread: records how late each wake-up is."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", PERIODIC], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.policy = self.proc.stdout.readline().strip()

    def halt(self) -> list[float]:
        out, _ = self.proc.communicate("stop\n", timeout=30)
        return json.loads(out.strip().splitlines()[-1])


class FakeProcess:
    """The fake BlueZ and the app in a process of their own, as bluetoothd and the phone are."""

    def __init__(self, bus: str, secret_hex: str, key_id: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware.testing.fakebluez", "--bus", bus, "--phone", PHONE,
             "--secret-hex", secret_hex, "--key-id", str(key_id)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        if self._line() != "ready":
            raise SystemExit("bench_phone: the fake BlueZ did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def command(self, cmd: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._line()

    def stats(self) -> dict[str, int]:
        return json.loads(self.command("stats"))

    def close(self) -> None:
        try:
            self.command("quit")
        except (BrokenPipeError, ValueError):
            pass
        self.proc.wait(10)


def coach_run(calls: int, sink: Callable[[Event], None], state_dir: Path, phone: Any) -> tuple[list[float], int]:
    """Drive the synthetic call through the real coach ``calls`` times, ``phone`` as its PhoneSink
    (the coach itself sends it tips, status, recaps); ``sink`` sees every published event."""
    from firmware.coach.build import build_coach
    from firmware.config import Config, PathsConfig
    from firmware.cues.pins import make_pin_factory
    from firmware.testing.truth import drive, load_truth

    call = load_truth(REPO / "tests" / "fixtures" / "coach" / "synthetic_call.json")
    times: list[float] = []
    n = 0
    for _ in range(calls):
        events: list[Event] = []

        def publish(event: Event) -> None:
            events.append(event)
            sink(event)

        kit = build_coach(Config(paths=PathsConfig(state_dir=state_dir)), publish, phone=phone,
                          pin_factory=make_pin_factory("mock"))  # fmt: skip
        assert kit.coach is not None
        coach = kit.coach
        t0 = time.perf_counter()
        try:

            def on_event(event: Any) -> None:
                publish(event)
                coach.on_event(event)

            end = drive(call, coach.on_activity, on_event, 0.6)
            coach.end_call(end)
        finally:
            times.append((time.perf_counter() - t0) * 1000.0)
            kit.close()
        n += len(events)
    return times, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tips", type=int, default=300, help="tips sent one at a time (default 300)")
    ap.add_argument("--reconnects", type=int, default=12, help="absences measured (default 12)")
    ap.add_argument("--calls", type=int, default=12, help="coach runs per column (default 12)")
    args = ap.parse_args()
    if args.tips < 10 or args.calls < 2:
        print("bench_phone: --tips must be >= 10 and --calls >= 2", file=sys.stderr)
        return 2

    figures: dict[str, Any] = {}
    with PrivateBus() as bus, tempfile.TemporaryDirectory() as state:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        store = PairingStore(Path(state))
        secret = store.ensure_secret()
        fake = FakeProcess(bus.address, secret.secret.hex(), secret.key_id)
        store.remember(BondedPhone(PHONE, "bench phone"))
        link = PhoneLink(PhoneConfig(), store)  # the defaults, as shipped
        link.start()
        try:
            if not wait(lambda: link.status()["connected"]):
                print("bench_phone: the link did not come up", file=sys.stderr)
                return 1

            # 1. one tip at a time
            for n in range(args.tips):
                acked = link.status()["counters"]["acked"]
                link.send(tip(n))
                wait(lambda a=acked: link.status()["counters"]["acked"] > a)
            single = link.ack_latencies_ms()[-args.tips :]
            # and a burst of 16 (half the queue: a coach never has more than a few tips at once)
            before = len(link.ack_latencies_ms())
            for n in range(BURST):
                link.send(tip(100_000 + n))
            wait(lambda: len(link.ack_latencies_ms()) >= before + BURST)
            burst = link.ack_latencies_ms()[before:]
            chunks = fake.stats()["writes"]
            print("Tip handed to the link -> written and acknowledged (fake latency 0, 20-byte writes)")
            print(f"  {'case':<22}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
            for name, vals in (("one at a time", single), (f"burst of {BURST}", burst)):
                print(f"  {name:<22}{len(vals):>6}{pct(vals, 50):>10.2f}{pct(vals, 95):>10.2f}{max(vals):>10.2f}")
            print(f"  ({chunks} chunk writes in all, {chunks / (args.tips + BURST):.1f} per tip)")
            figures.update(tip_write_p50_ms=round(pct(single, 50), 2), tip_write_p95_ms=round(pct(single, 95), 2),
                           tip_burst16_p95_ms=round(pct(burst, 95), 2), chunks_per_tip=round(chunks / (args.tips + BURST), 1))  # fmt: skip

            # 2. reconnect after absences of several lengths
            rows = []
            # absences spread over 0.3-8 s so the return lands at every phase of scan and backoff
            for away in [0.3 + 0.7 * k for k in range(args.reconnects)]:
                fake.command("away")
                wait(lambda: not link.status()["connected"])
                time.sleep(away)
                t0 = time.monotonic()
                fake.command("back")
                ok = wait(lambda: link.status()["connected"], timeout=30.0, step=0.002)
                rows.append((away, time.monotonic() - t0 if ok else float("inf")))
            print()
            print("Phone back in range -> link up (default backoff "
                  f"{PhoneConfig().backoff_initial_s}-{PhoneConfig().backoff_max_s} s, scan {PhoneConfig().scan_s} s)")  # fmt: skip
            print(f"  {'away s':>8}{'reconnect s':>14}")
            for away, took in rows:
                print(f"  {away:>8.1f}{took:>14.3f}")
            figures.update(reconnect_s=round(max(t for _, t in rows), 3),
                           reconnect_median_s=round(statistics.median(t for _, t in rows), 3),
                           reconnects_measured=len(rows))  # fmt: skip

            # 3. a flat-out coach, with and without the link
            send_us: list[float] = []

            class TimedLink:
                """The link as the coach's PhoneSink, timing each send on the coach's thread."""

                def send(self, event: Event) -> None:
                    t0 = time.perf_counter()
                    link.send(event)
                    send_us.append((time.perf_counter() - t0) * 1e6)

            timed = TimedLink()
            extra = [0]

            def tip_per_utterance(event: Event) -> None:
                # the coach tips a few times per call; a tip per utterance as well keeps the
                # link's thread writing the whole time
                if event.type == "utterance":
                    extra[0] += 1
                    timed.send(tip(200_000 + extra[0]))

            from firmware.coach.sinks import InMemoryPhoneSink

            coach_run(1, lambda e: None, Path(state), InMemoryPhoneSink())  # warm-up (imports, playbook)
            # The two columns alternate call by call, so both see the same background load
            # (this machine is shared); the periodic loop measures each call on its own.
            idle_ms: list[float] = []
            busy_ms: list[float] = []
            idle_late: list[float] = []
            busy_late: list[float] = []
            acked_before = link.status()["counters"]["acked"]
            n_events = 0
            for _ in range(args.calls):
                periodic = Periodic()
                ms, n = coach_run(1, lambda e: None, Path(state), InMemoryPhoneSink())
                idle_late += periodic.halt()
                idle_ms += ms
                n_events += n
                periodic = Periodic()
                ms, _ = coach_run(1, tip_per_utterance, Path(state), timed)
                wait(lambda: link.status()["queued"] == 0, timeout=30.0)  # the link's work is part of it
                busy_late += periodic.halt()
                busy_ms += ms
            acked = link.status()["counters"]["acked"] - acked_before
            print()
            print(f"Flat-out coach: the synthetic call x {args.calls}, {n_events // args.calls} events per call")
            print(f"  {'':<34}{'no link':>12}{'link busy':>12}")
            print(f"  {'coach ms per call, median':<34}{statistics.median(idle_ms):>12.1f}{statistics.median(busy_ms):>12.1f}")
            print(f"  {'10 ms loop (' + periodic.policy + ') late p99 ms':<34}{pct(idle_late, 99):>12.2f}{pct(busy_late, 99):>12.2f}")
            print(f"  {'10 ms thread misses (> 5 ms late)':<34}{sum(x > 5 for x in idle_late):>12d}{sum(x > 5 for x in busy_late):>12d}")
            print(f"  PhoneLink.send on the coach's thread: p50 {pct(send_us, 50):.1f} us, p99 {pct(send_us, 99):.1f} us, "
                  f"max {max(send_us):.1f} us over {len(send_us)} calls; {acked} frames acknowledged meanwhile")  # fmt: skip
            c = link.status()["counters"]
            print(f"  link counters: sent {c['sent']}, acked {c['acked']}, retried {c['retried']}, "
                  f"dropped overflow {c['dropped_overflow']}, handoff {c['dropped_handoff']}")  # fmt: skip
            figures.update(
                coach_call_ms_no_link=round(statistics.median(idle_ms), 1),
                coach_call_ms_link_busy=round(statistics.median(busy_ms), 1),
                coach_slowdown_pct=round(100 * (statistics.median(busy_ms) / statistics.median(idle_ms) - 1), 1),
                send_p99_us=round(pct(send_us, 99), 1),
                periodic_misses_no_link=sum(x > 5 for x in idle_late),
                periodic_misses_link_busy=sum(x > 5 for x in busy_late),
                periodic_late_p99_ms_no_link=round(pct(idle_late, 99), 2),
                periodic_late_p99_ms_link_busy=round(pct(busy_late, 99), 2),
                frames_acked_under_load=acked,
            )
        finally:
            link.stop()
            fake.close()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
