"""``parallax pair``: the phone link's secret (QR code for the rep's app), its rotation, the bond, the state.

Pairing itself happens on the running box: hold the button for 5 s (the LED blinks blue), or send
``parallax run`` SIGUSR1 (``systemctl kill -s USR1 parallax-coach``), then open the app and scan
the code this command prints. See docs/phone-protocol.md.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pair", help="the rep's phone: pairing QR code, secret rotation, link state")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--show-qr", action="store_true", help="print the pairing code as a QR code (default)")
    what.add_argument("--rotate", action="store_true", help="new secret (the old one stops working), then its QR code")
    what.add_argument("--forget", action="store_true", help="forget the bonded phone")
    what.add_argument("--status", action="store_true", help="the link's state as the running box last wrote it")
    p.add_argument("--text", action="store_true", help="print the code as text only (no QR blocks)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from firmware.config import load_config
    from firmware.phone.secret import PairingStore

    config = load_config(args.config)
    state_dir = config.paths.resolve(config.paths.state_dir)
    store = PairingStore(state_dir)
    if args.forget:
        bonded = store.bonded()
        store.forget()
        print("forgot " + (bonded.address if bonded else "nothing (no phone was bonded)"))
        return 0
    if args.status:
        from firmware.phone.link import STATUS_FILE, read_status

        status = read_status(state_dir / STATUS_FILE)
        if status is None:
            print("no link state yet (is `parallax run` running with [phone] enabled?)")
            return 1
        age = time.time() - float(status.pop("written_at", 0.0))
        counters = status.pop("counters", {})
        for key, value in status.items():
            print(f"{key:14s} {value}")
        print(f"{'written':14s} {age:.0f} s ago")
        print("counters       " + json.dumps(counters, sort_keys=True))
        return 0
    secret = store.rotate() if args.rotate else store.ensure_secret()
    payload = secret.qr_payload(socket.gethostname())
    if not args.text:
        print_qr(payload)
    print(f"key {secret.key_id} ({secret.fingerprint()}){' - rotated: the app must scan again' if args.rotate else ''}")
    print(f"pairing code (type it in if the QR code cannot be scanned): {payload}")
    print("Keep it private: whoever has it can read this box's tips.")
    return 0


def print_qr(payload: str) -> None:
    """The QR code in half-block characters (two modules per character row)."""
    try:
        import segno
    except ImportError:  # the code below the QR is the fallback
        print("(segno is not installed: no QR code, the text code follows)")
        return
    segno.make(payload, error="m").terminal(out=sys.stdout, compact=True)
