"""intent subsystem: an utterance's text -> one of :data:`LABELS`, on the device, in about a millisecond.

``load_classifier`` / ``IntentClassifier`` / ``IntentResult`` are imported lazily so that reading
the configuration (which imports :mod:`firmware.intent.config`) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware.intent.classifier import IntentClassifier, IntentResult, load_classifier

__all__ = ["IntentClassifier", "IntentResult", "load_classifier"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from firmware.intent import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'firmware.intent' has no attribute {name!r}")
