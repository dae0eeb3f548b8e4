"""The one way into onnxruntime: imported with its telemetry off.

The onnxruntime wheels from 1.32 on carry Microsoft's 1DS telemetry. Imported plainly, the library
writes a device id and an event database under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``
and a session file ``$TMPDIR/.ses``, and is built to upload to ``mobile.events.data.microsoft.com``.
Nothing about a call may leave the box, and that includes which models ran and when. The library reads
``ORT_DISABLE_TELEMETRY`` once, when it loads, so the variable has to be in the environment before the
first import. Every import of onnxruntime in this package goes through :func:`import_onnxruntime`.
``tests/test_privacy.py`` proves that the recogniser leaves nothing behind in ``HOME`` or ``TMPDIR``.

(sherpa-onnx bundles an onnxruntime of its own, built without this telemetry. The systemd units
set the variable as well, so it also covers anything a unit starts.)
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType

log = logging.getLogger(__name__)

TELEMETRY_OFF = {"ORT_DISABLE_TELEMETRY": "1"}


def import_onnxruntime() -> ModuleType:
    """Import onnxruntime with its telemetry disabled. Any thread; blocks while the library loads
    (a few hundred ms the first time). Raises ImportError if the wheel is not installed."""
    if "onnxruntime" not in sys.modules:
        os.environ.update(TELEMETRY_OFF)
    elif os.environ.get("ORT_DISABLE_TELEMETRY") != "1":
        # Something imported it before us. Its load-time telemetry already ran; switch off what is left.
        log.warning("onnxruntime was imported before its telemetry was disabled")
    import onnxruntime

    disable = getattr(onnxruntime, "disable_telemetry_events", None)
    if disable is not None:
        disable()
    return onnxruntime
