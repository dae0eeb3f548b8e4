#!/usr/bin/env python3
"""Fleet rollout benchmark: publish -> applied on N boxes sharing one broker, over MQTT and HTTPS.

    .venv/bin/python tools/bench_fleet.py [--boxes 50] [--mb 100] [--modes mqtt,https] [--broker mosquitto|ejabberd]

For each transport: a fresh mosquitto from board/mosquitto (mutual TLS, the ACL) on loopback (or,
with ``--broker ejabberd``, ejabberd's mod_mqtt set up the same way by tools/fleet_rig.py), N
`parallax agent` processes (each its own box certificate, state folder and model store seeded
with intent 1.4.0), and one signed offer of intent 1.5.0 whose folder carries ``--mb`` MB of
random padding, so the artifact is that big. The clock runs from the start of the publish (for
MQTT that includes the admin publishing every chunk) to the last box reporting ``applied``.
Afterwards every box's store is checked: the current version must be 1.5.0 and every file must
match the bytes published (``corrupt_applied`` counts boxes where it does not).

Prints a table, and as the very last line one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from fleet_rig import BROKERS, ArtifactServer, Broker  # noqa: E402

from firmware.fleet import admin  # noqa: E402
from firmware.fleet.signing import SigningKey  # noqa: E402
from firmware.fleet.storeadapter import current_version, open_store  # noqa: E402

GROUP = "bench"
GOLDEN = {
    "min_agreement": 1.0,
    "cases": [
        {"text": "that is way more than we budgeted", "speaker": "buyer", "intent": "objection_price"},
        {"text": "can we set up a call next week", "speaker": "buyer", "intent": "next_step"},
    ],
}


def _vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _model_folder(dest: Path, mb: int, version: str) -> Path:
    """The committed intent model as store version ``version``, plus ``mb`` MB of random padding
    listed in its manifest (so the store hashes it like any model file)."""
    from firmware.store import read_manifest, write_manifest

    src = REPO / "models" / "intent" / "1.4.0"
    shutil.copytree(src, dest)
    (dest / "golden.json").write_text(json.dumps(GOLDEN))
    m = read_manifest(src)
    files = {role: f.path for role, f in m.files.items()}
    if mb:
        with (dest / "padding.bin").open("wb") as f:
            for _ in range(mb):
                f.write(os.urandom(1 << 20))
        files["padding"] = "padding.bin"
    write_manifest(dest, name=m.name, version=version, family=m.family, licence=m.licence, files=files,
                   description=m.description, options=json.loads(json.dumps(dict(m.options))), provenance=json.loads(json.dumps(dict(m.provenance))))
    return dest


def _seed(store_dir: Path, seed_src: Path) -> None:
    store = open_store(store_dir)
    store.stage("intent", "1.4.0", seed_src)
    store.activate("intent", "1.4.0")


def _box_config(root: Path, broker: Broker, box: str, pub_line: str) -> Path:
    ca, cert, key = broker.cert(box)
    cfg = root / "parallax.toml"
    cfg.write_text(
        f'[paths]\nstate_dir = "{root / "state"}"\nmodels_dir = "{root / "state" / "models"}"\n\n[fleet]\nbroker_host = "{broker.host}"\nbroker_port = {broker.port}\n'
        f'box_id = "{box}"\ngroup = "{GROUP}"\nca_file = "{ca}"\ncert_file = "{cert}"\nkey_file = "{key}"\n'
        f'https_ca_file = "{broker.tls / "ca.crt"}"\nadmin_keys = ["{pub_line}"]\nwatch_calls = 0\ntelemetry_s = 30.0\n'
        f"selftest_timeout_s = 300.0\nchunk_timeout_s = 30.0\n"
    )
    return cfg


def run_mode(mode: str, n: int, mb: int, work: Path, key: SigningKey, timeout_s: float, broker_kind: str = "mosquitto") -> dict[str, Any]:
    boxes = [f"box-{i:03d}" for i in range(1, n + 1)]
    broker = BROKERS[broker_kind](work / "broker", {b: GROUP for b in boxes})
    # ejabberd takes a certificate as the login only with the CN also given as username.
    admin_user = "admin-ops" if broker_kind == "ejabberd" else None
    broker.start()
    seed_src = work / "seed"
    _model_folder(seed_src, 0, "1.4.0")
    model_dir = _model_folder(work / "model-1.5.0", mb, "1.5.0")
    data = admin.model_tar(model_dir)
    expected = {p.relative_to(model_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in model_dir.rglob("*") if p.is_file()}
    server = ArtifactServer(work / "cdn", broker.tls) if mode == "https" else None
    (work / "cdn").mkdir(exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    applied: dict[str, float] = {}
    rejected: dict[str, str] = {}
    lock = threading.Lock()
    watcher = admin.AdminClient(admin.Connection(broker.host, broker.port, *broker.cert("admin-ops"), username=admin_user))
    online: set[str] = set()
    peak_broker = 0.0
    agent_peak = 0.0
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        for box in boxes:
            root = work / box
            (root / "state").mkdir(parents=True)
            _seed(root / "state" / "models", seed_src)
            procs[box] = subprocess.Popen([sys.executable, "-m", "firmware", "--config", str(_box_config(root, broker, box, key.public_line)), "agent"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(root / "agent.log", "wb"))

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            parts = msg.topic.split("/")
            try:
                obj = json.loads(msg.payload) if msg.payload else {}
            except ValueError:
                return
            with lock:
                if parts[-1] == "status" and obj.get("state") == "online":
                    online.add(parts[3])
                elif parts[-1] == "progress" and obj.get("state") == "applied":
                    applied.setdefault(parts[3], time.monotonic())
                elif parts[-1] == "progress" and obj.get("state") == "rejected":
                    rejected[parts[3]] = str(obj.get("reason"))

        watcher.c.on_message = on_message
        watcher.c.subscribe("parallax/v1/box/+/status", 1)
        watcher.c.subscribe("parallax/v1/box/+/progress", 1)
        deadline = time.monotonic() + 180
        while len(online) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        if len(online) < n:
            raise RuntimeError(f"only {len(online)} of {n} agents came online")
        publisher = admin.AdminClient(admin.Connection(broker.host, broker.port, *broker.cert("admin-ops"), username=admin_user))
        t0 = time.monotonic()
        admin.publish_update(publisher, key, group=GROUP, kind="model", name="intent", version="1.5.0", data=data,
                             url_base=server.url_base if server else None, artifact_dir=work / "cdn")
        published_s = time.monotonic() - t0
        publisher.close()
        while time.monotonic() - t0 < timeout_s:
            with lock:
                if len(applied) + len(rejected) >= n:
                    break
            peak_broker = max(peak_broker, broker.peak_rss_mb())
            time.sleep(0.25)
        elapsed = (max(applied.values()) - t0) if len(applied) == n else float("nan")
        peak_broker = max(peak_broker, broker.peak_rss_mb())
        agent_peak = max(_vm_hwm_mb(p.pid) for p in procs.values())
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        watcher.close()
        if server:
            server.close()
        broker.stop()
    corrupt = 0
    for box in applied:
        store_dir = work / box / "state" / "models"
        store = open_store(store_dir)
        if current_version(store, "intent") != "1.5.0":
            corrupt += 1
            continue
        folder = store_dir / "intent" / "1.5.0"
        for rel, digest in expected.items():
            try:
                with (folder / rel).open("rb") as f:
                    ok = hashlib.file_digest(f, "sha256").hexdigest() == digest
            except OSError:
                ok = False
            if not ok:
                corrupt += 1
                break
    times = sorted(t - t0 for t in applied.values())
    return {
        "mode": mode,
        "boxes": n,
        "artifact_mb": len(data) / 1e6,
        "applied": len(applied),
        "rejected": len(rejected),
        "rejections": sorted(set(rejected.values()))[:3],
        "publish_s": published_s,
        "first_applied_s": times[0] if times else float("nan"),
        "median_applied_s": times[len(times) // 2] if times else float("nan"),
        "all_applied_s": elapsed,
        "broker_peak_rss_mb": peak_broker,
        "agent_peak_rss_mb": agent_peak,
        "corrupt_applied": corrupt,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=50)
    parser.add_argument("--mb", type=int, default=100, help="artifact size in MB (random padding in the model folder)")
    parser.add_argument("--modes", default="mqtt,https")
    parser.add_argument("--broker", choices=sorted(BROKERS), default="mosquitto", help="ejabberd (mod_mqtt) is a manual comparison; CI uses mosquitto")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for every box per mode")
    args = parser.parse_args()
    if args.boxes < 1 or args.mb < 0:
        print("bench_fleet: --boxes must be >= 1 and --mb >= 0", file=sys.stderr)
        return 2
    key = SigningKey.generate()
    results = []
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-fleet-{mode}-") as d:
            print(f"{mode} via {args.broker}: {args.boxes} boxes, {args.mb} MB artifact ...", file=sys.stderr, flush=True)
            results.append(run_mode(mode, args.boxes, args.mb, Path(d), key, args.timeout, args.broker))
    print(f"{'transport':<10} {'boxes':>5} {'MB':>6} {'applied':>7} {'publish s':>9} {'first s':>8} {'median s':>8} {'all s':>8} {'broker MB':>9} {'agent MB':>8} {'corrupt':>7}")
    for r in results:
        print(f"{r['mode']:<10} {r['boxes']:>5} {r['artifact_mb']:>6.1f} {r['applied']:>7} {r['publish_s']:>9.1f} {r['first_applied_s']:>8.1f} "
              f"{r['median_applied_s']:>8.1f} {r['all_applied_s']:>8.1f} {r['broker_peak_rss_mb']:>9.1f} {r['agent_peak_rss_mb']:>8.1f} {r['corrupt_applied']:>7}")
        if r["rejections"]:
            print(f"  rejected: {r['rejections']}")
    by = {r["mode"]: r for r in results}
    main_r = by.get("mqtt", results[0])
    figures: dict[str, Any] = {
        "boxes_applied": main_r["applied"],
        "apply_50_boxes_s": round(main_r["all_applied_s"], 1),
        "broker_peak_rss_mb": round(main_r["broker_peak_rss_mb"], 1),
        "corrupt_applied": sum(r["corrupt_applied"] for r in results),
    }
    for r in results:
        figures[f"{r['mode']}_boxes_applied"] = r["applied"]
        figures[f"{r['mode']}_apply_all_s"] = round(r["all_applied_s"], 1)
        figures[f"{r['mode']}_broker_peak_rss_mb"] = round(r["broker_peak_rss_mb"], 1)
        figures[f"{r['mode']}_agent_peak_rss_mb"] = round(r["agent_peak_rss_mb"], 1)
    figures["artifact_mb"] = round(results[0]["artifact_mb"], 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
