"""`parallax replay` end to end on real audio with the real models: the event contract, odd
recordings that must still work, and bad input that must end in one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.model


def normalise(text: str) -> list[str]:
    import re

    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(truth: list[str], hyps: list[str]) -> float:
    import jiwer

    return float(jiwer.wer(" ".join(normalise(" ".join(truth))), " ".join(normalise(" ".join(hyps)))))


def parallax(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run([sys.executable, "-m", "firmware", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=300)


def read_stereo(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
        return pcm.astype(np.float32) / 32768.0, w.getframerate()


def write_stereo(path: Path, data: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(data, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def demo_events(models_dir: Path, demo_call: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("replay") / "events.jsonl"
    result = parallax("replay", str(demo_call), "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_events_keep_the_contract(demo_events: list[dict]) -> None:
    utterances = [e for e in demo_events if e["type"] == "utterance"]
    assert utterances
    for e in utterances:
        assert {"type", "t", "speaker", "start", "end", "text", "intent", "confidence"} <= set(e)
        assert e["speaker"] in ("rep", "buyer")
        assert 0 <= e["start"] < e["end"] <= e["t"]
        assert isinstance(e["text"], str) and e["text"].strip()
    summary = demo_events[-1]
    assert summary["type"] == "summary"
    assert summary["duration_s"] > 40 and summary["cpu_s"] > 0
    ts = [e["t"] for e in demo_events]
    assert ts == sorted(ts), "events are emitted in call-time order"


def test_both_parties_transcribed(demo_events: list[dict], demo_call: Path) -> None:
    truth = json.loads(demo_call.with_suffix(".json").read_text())
    for speaker, ceiling in (("rep", 0.35), ("buyer", 0.75)):
        ref = [u["text"] for u in truth["utterances"] if u["speaker"] == speaker]
        hyp = [e["text"] for e in demo_events if e["type"] == "utterance" and e["speaker"] == speaker]
        assert word_error_rate(ref, hyp) < ceiling, (speaker, hyp)


def test_timeline_is_readable(models_dir: Path, demo_call: Path) -> None:
    result = parallax("replay", str(demo_call))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(" REP " in line for line in lines) and any(" BUYER " in line for line in lines)
    assert "END" in lines[-1]


def test_json_to_stdout_keeps_stdout_pure(models_dir: Path, demo_call: Path) -> None:
    result = parallax("replay", str(demo_call), "--json", "-")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        json.loads(line)
    assert " BUYER " in result.stderr  # the human timeline moved to stderr


@pytest.mark.parametrize(
    "variant",
    ["8khz", "clipped", "dc_offset", "swapped_channels"],
)
def test_odd_recordings_still_transcribe(models_dir: Path, demo_call: Path, tmp_path: Path, variant: str) -> None:
    import soxr

    audio, rate = read_stereo(demo_call)
    args: list[str] = []
    if variant == "8khz":
        audio, rate = np.stack([soxr.resample(audio[:, c], rate, 8000) for c in (0, 1)], axis=1), 8000
    elif variant == "clipped":
        audio = np.clip(audio * 6, -1, 1)  # hard clipping of every loud syllable
    elif variant == "dc_offset":
        audio = audio + 0.25
    elif variant == "swapped_channels":
        audio = audio[:, ::-1]
        args = ["--channels", "1,0"]
    path = write_stereo(tmp_path / f"{variant}.wav", audio, rate)
    out = tmp_path / "events.jsonl"
    result = parallax("replay", str(path), *args, "--json", str(out))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    truth = json.loads(demo_call.with_suffix(".json").read_text())
    ref = [u["text"] for u in truth["utterances"] if u["speaker"] == "rep"]
    hyp = [e["text"] for e in events if e["type"] == "utterance" and e["speaker"] == "rep"]
    assert word_error_rate(ref, hyp) < 0.5, (variant, hyp)


def test_silence_is_a_quiet_call(models_dir: Path, tmp_path: Path) -> None:
    path = write_stereo(tmp_path / "silence.wav", np.zeros((16000 * 20, 2), np.float32), 16000)
    out = tmp_path / "events.jsonl"
    result = parallax("replay", str(path), "--json", str(out))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    # Nothing was said: the coach's status at either end of the call, the rep's recap, the summary.
    assert [e["type"] for e in events] == ["status", "recap", "status", "summary"]
    assert events[-1]["duration_s"] == pytest.approx(20.0, abs=0.05)


def test_line_noise_alone_makes_no_utterances(models_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    hiss = rng.normal(0, 0.01, (16000 * 15, 2)).astype(np.float32)
    hum = 0.02 * np.sin(2 * np.pi * 50 * np.arange(16000 * 15) / 16000)[:, None].astype(np.float32)
    path = write_stereo(tmp_path / "noise.wav", hiss + hum, 16000)
    out = tmp_path / "events.jsonl"
    result = parallax("replay", str(path), "--json", str(out))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e for e in events if e["type"] == "utterance"] == []


def _one_clear_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("parallax: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_mono_file_gets_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 16000)
    _one_clear_error(parallax("replay", str(path)), "mono.wav", "1 channel")


def test_non_wav_and_truncated_header_get_one_clear_line(tmp_path: Path, demo_call: Path) -> None:
    junk = tmp_path / "call.wav"
    junk.write_bytes(b"ID3\x03\x00 this is an mp3, not a wav")
    _one_clear_error(parallax("replay", str(junk)), "not a readable PCM WAV")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(demo_call.read_bytes()[:20])
    _one_clear_error(parallax("replay", str(cut)), "not a readable PCM WAV")
    _one_clear_error(parallax("replay", str(tmp_path / "absent.wav")), "no such file")


def test_bad_options_get_one_clear_line(demo_call: Path) -> None:
    _one_clear_error(parallax("replay", str(demo_call), "--speed", "fast"), "--speed")
    _one_clear_error(parallax("replay", str(demo_call), "--channels", "0,0"), "--channels")


def _models_copy(models_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy, symlinks=True, ignore=shutil.ignore_patterns(".cache", "whisper-base"))
    return copy


def _config_for(models: Path, tmp_path: Path) -> Path:
    cfg = tmp_path / "parallax.toml"
    cfg.write_text(f'[paths]\nmodels_dir = "{models}"\nstate_dir = "{tmp_path / "state"}"\n')
    return cfg


def test_corrupt_model_file_gets_one_clear_line(models_dir: Path, demo_call: Path, tmp_path: Path) -> None:
    models = _models_copy(models_dir, tmp_path)
    decoder = models / "whisper-tiny.en" / "current" / "decoder.int8.onnx"
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = os.urandom(4096)
    decoder.write_bytes(bytes(data))
    _one_clear_error(parallax("--config", str(_config_for(models, tmp_path)), "replay", str(demo_call)),
                     "decoder.int8.onnx")


def test_missing_model_gets_one_clear_line(models_dir: Path, demo_call: Path, tmp_path: Path) -> None:
    models = _models_copy(models_dir, tmp_path)
    (models / "silero-vad" / "current" / "silero_vad.onnx").unlink()
    _one_clear_error(parallax("--config", str(_config_for(models, tmp_path)), "replay", str(demo_call)),
                     "silero")
