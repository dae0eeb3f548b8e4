"""A stand-in for the coach process, as the fleet agent sees it: a test rig.

    python tests/fleet_coach_sim.py STORE_DIR STATE_DIR CALLS [CRASH_ON_VERSION]

Like ``parallax run`` it loads the store's current intent model and playbook, writes the coach's
counters file when it starts and at each call's end (firmware.fleet.counters.CoachCounters), and
runs CALLS "calls", each labelling a few buyer lines under the store's call lock. With
CRASH_ON_VERSION, a call on that intent version crashes the process (exit 3) after the model
loaded: a version that loads but takes the coach down. Exit 0 after the calls.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firmware.coach.playbook import load_playbook  # noqa: E402
from firmware.fleet.counters import CoachCounters  # noqa: E402
from firmware.fleet.storeadapter import current_version, open_store  # noqa: E402
from firmware.intent.classifier import IntentClassifier  # noqa: E402

LINES = ("that is way more than we budgeted", "can we set up a call next week")


def main() -> int:
    store_dir, state_dir, calls = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    crash_on = sys.argv[4] if len(sys.argv) > 4 else None
    store = open_store(store_dir)
    version = current_version(store, "intent")
    model = IntentClassifier(store.verify("intent").directory)
    load_playbook(store.verify("playbook").file("playbook"))
    counters = CoachCounters(state_dir, {"intent": str(version), "playbook": str(current_version(store, "playbook"))})
    counters.write()
    for _ in range(calls):
        with store.call_lock():
            labels = [model.classify(line, "buyer").label for line in LINES]
            if version == crash_on:
                return 3
        for label in labels:
            counters.tip(label)
        counters.call_ended(recognizer_rtf=0.2)
        counters.write()
    print(" ".join(labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
