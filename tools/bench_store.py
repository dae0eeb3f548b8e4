#!/usr/bin/env python3
"""Benchmark the model store at a call boundary: what a call start costs the coach.

On a copy of the built models (a temporary store; models/ is only read):
- a call start with nothing changed (the call lock plus one readlink per followed model),
- a call start while the fleet agent holds the lock (bounded by the lease's wait),
- the agent's switch itself (``activate``: the time it holds the lock exclusively),
- a call start that finds a new Whisper version (hash + load) and a new playbook,
- ``parallax models verify``'s hashing of every model.

Prints a readable table; the very last line is one JSON object of the figures.

    python tools/bench_store.py [--starts 300]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firmware.config import Config, PathsConfig  # noqa: E402
from firmware.runtime import ModelFollower  # noqa: E402
from firmware.store import ModelStore  # noqa: E402

MODELS = ("whisper-tiny.en", "silero-vad", "intent", "playbook")


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=300, help="call starts to time")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the busy call starts each log a warning, by design

    source = ModelStore(REPO / "models")
    missing = [name for name in MODELS if source.current(name) is None]
    if missing:
        print(f"not built: {', '.join(missing)} (run `parallax models build`)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        store = ModelStore(Path(tmp) / "models")
        for name in MODELS:
            version = source.current(name)
            assert version is not None
            store.stage(name, version, source.manifest(name).directory)
            store.activate(name, version)
        config = Config(paths=PathsConfig(models_dir=store.root, state_dir=Path(tmp) / "state"))
        started = time.perf_counter()
        follower = ModelFollower(config, store)
        first_load_s = time.perf_counter() - started

        unchanged = []
        for _ in range(args.starts):
            t0 = time.perf_counter()
            _, lease = follower.start_call()
            unchanged.append((time.perf_counter() - t0) * 1e3)
            lease.release()

        # The agent mid-switch (another process holding the lock exclusively): how long a start waits.
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys; from pathlib import Path; from firmware.store import ModelStore\n"
             "with ModelStore(Path(sys.argv[1])).when_idle():\n    print('held', flush=True); sys.stdin.read()", str(store.root)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = []
        for _ in range(50):
            t0 = time.perf_counter()
            _, lease = follower.start_call()
            busy.append((time.perf_counter() - t0) * 1e3)
            assert not lease.held
        assert holder.stdin is not None
        holder.stdin.close()
        holder.stdout.close()
        holder.wait(timeout=10)

        # A new Whisper version and a new playbook (copies under new version names).
        switches = []
        holds = []
        reloads = []
        for n in range(3):
            for name in ("whisper-tiny.en", "playbook"):
                current = store.manifest(name)
                work = Path(tmp) / f"{name}-{n}"
                shutil.copytree(current.directory, work)
                text = (work / "manifest.toml").read_text(encoding="utf-8")
                (work / "manifest.toml").write_text(text.replace(f'version = "{current.version}"', f'version = "b{n}"', 1), encoding="utf-8")
                store.stage(name, f"b{n}", work)
            t0 = time.perf_counter()
            with store.when_idle(timeout_s=5):
                held_from = time.perf_counter()
                for name in ("whisper-tiny.en", "playbook"):
                    store.activate(name, f"b{n}")
                holds.append((time.perf_counter() - held_from) * 1e3)
            switches.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            engines, lease = follower.start_call()
            reloads.append(time.perf_counter() - t0)
            lease.release()
            assert engines.versions["whisper-tiny.en"] == f"b{n}" and not engines.fallbacks

        t0 = time.perf_counter()
        for name in MODELS:
            for version in store.versions(name):
                store.verify(name, version)
        verify_s = time.perf_counter() - t0
        total_mb = sum(f.size for name in MODELS for v in store.versions(name) for f in store.manifest(name, v).files.values()) / 1e6
        store.close()

    rows = [
        ("first load, all four models", f"{first_load_s:.2f} s"),
        (f"call start, nothing changed (p50 / p95 of {len(unchanged)})", f"{statistics.median(unchanged):.3f} / {p95(unchanged):.3f} ms"),
        ("call start, agent holds the lock (p50 / max)", f"{statistics.median(busy):.2f} / {max(busy):.2f} ms"),
        ("agent's switch of two models: lock held (median / max)", f"{statistics.median(holds):.2f} / {max(holds):.2f} ms"),
        ("agent's switch of two models: with lock and flush (median)", f"{statistics.median(switches):.2f} ms"),
        ("call start that loads a new Whisper + playbook (median)", f"{statistics.median(reloads):.2f} s"),
        (f"verify every version ({total_mb:.0f} MB)", f"{verify_s:.2f} s"),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    figures = {
        "first_load_s": round(first_load_s, 3),
        "call_start_unchanged_p50_ms": round(statistics.median(unchanged), 4),
        "call_start_unchanged_p95_ms": round(p95(unchanged), 4),
        "call_start_store_busy_max_ms": round(max(busy), 3),
        "switch_lock_held_max_ms": round(max(holds), 3),
        "switch_two_models_ms": round(statistics.median(switches), 3),
        "call_start_reload_whisper_playbook_s": round(statistics.median(reloads), 3),
        "verify_all_s": round(verify_s, 3),
        "verify_all_mb": round(total_mb, 1),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
