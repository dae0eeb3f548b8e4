"""``parallax doctor``: check the box and say what is wrong and how to fix it.

Exit status 0 when nothing failed (warnings allowed), 1 when a check failed; ``--json`` prints
one object (``healthy``, ``checks``) for the fleet agent. The checks live in :mod:`firmware.doctor`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check the box (audio, gadget, Bluetooth, GPIO, fleet, models, services) and say how to fix it")
    p.add_argument("--json", action="store_true", help="one JSON object: {healthy, checks: [{name, status, detail, fix}]}")
    p.add_argument("--mqtt", metavar="HOST:PORT", help="fleet broker to try (default: the configuration's, if any)")
    p.set_defaults(handler=run)


def _broker(text: str | None, config: object) -> tuple[str, int] | None:
    from firmware.errors import ConfigError

    if text:
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--mqtt {text!r}: expected HOST:PORT")
        return host, int(port)
    fleet = getattr(config, "fleet", None)  # the fleet agent's section, when the firmware has one
    host = getattr(fleet, "broker_host", None) or getattr(fleet, "host", None)
    port = getattr(fleet, "broker_port", None) or getattr(fleet, "port", None)
    return (str(host), int(port)) if host and port else None


def run(args: argparse.Namespace) -> int:
    from firmware.config import Config, load_config
    from firmware.doctor import Check, Probes, as_json, healthy, run_checks
    from firmware.errors import ConfigError

    pre: list[Check] = []
    try:
        config = load_config(args.config)
        pre.append(Check("config", "ok", str(args.config or "/etc/parallax/parallax.toml or built-in defaults")))
    except ConfigError as exc:
        config = Config()
        pre.append(Check("config", "fail", str(exc), "fix the file (every key and range: firmware/*/config.py); the checks below use the defaults"))
    paths = config.paths
    probes = Probes(
        state_dir=paths.resolve(paths.state_dir),
        models_dir=paths.resolve(paths.models_dir),
        cert_dirs=(paths.resolve(paths.state_dir) / "certs", Path("/etc/parallax/certs")),
        pin_factory=config.cues.pin_factory,
        mqtt=_broker(args.mqtt, config),
    )
    results = pre + run_checks(probes)
    if args.json:
        print(json.dumps(as_json(results)))
    else:
        width = max(len(c.name) for c in results)
        for c in results:
            mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[c.status]
            print(f"{mark}  {c.name:{width}s}  {c.detail}")
            if c.status != "ok" and c.fix:
                print(f"      {'':{width}s}  fix: {c.fix}")
        print("healthy" if healthy(results) else "NOT healthy: fix the FAIL lines above", file=sys.stderr)
    return 0 if healthy(results) else 1
