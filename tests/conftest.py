"""Shared fixtures. Corpus tests skip (with the reason) on a clone without ../shared; model tests
skip on a machine where `parallax models build` has not run, except in CI, where that is a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = (REPO.parent / "shared" / "corpus" / "dev").resolve()
MODELS = REPO / "models"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS / "calls").is_dir():
        pytest.skip(f"dev corpus not present at {CORPUS} (only on machines with ../shared)")
    return CORPUS


def _require_model(name: str) -> Path:
    from firmware.errors import ModelError
    from firmware.provision.manifest import load_manifest

    try:
        load_manifest(MODELS, name)
    except ModelError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have built the models: {exc}")
        pytest.skip(str(exc))
    return MODELS


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The built speech models (Silero VAD + Whisper tiny.en)."""
    _require_model("silero-vad")
    return _require_model("whisper-tiny.en")


@pytest.fixture(scope="session")
def demo_call(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo call rendered with espeak-ng; its ground truth sits beside it as JSON."""
    from firmware.testing.render import render_call

    wav = tmp_path_factory.mktemp("demo") / "demo_call.wav"
    render_call(REPO / "firmware" / "testing" / "demo_call.toml", wav)
    return wav


@pytest.fixture(scope="session")
def engines(models_dir: Path):  # type: ignore[no-untyped-def]
    """Real engines, loaded once for the session (loading Whisper takes a moment)."""
    from firmware.config import Config
    from firmware.runtime import load_engines

    return load_engines(Config())
