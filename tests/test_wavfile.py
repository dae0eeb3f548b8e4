"""Odd audio: every kind of bad or unusual recording is handled or gets one clear error."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from firmware.audio.frames import FRAME_SAMPLES
from firmware.audio.wavfile import iter_call_frames, parse_channel_map, probe_wav
from firmware.errors import AudioInputError


def write_wav(path: Path, data: np.ndarray, rate: int, width: int = 2) -> Path:
    data = np.atleast_2d(data.T).T if data.ndim == 1 else data
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 2:
            w.writeframes((np.clip(data, -1, 1) * 32767).astype("<i2").tobytes())
        elif width == 4:
            w.writeframes((np.clip(data, -1, 1) * (2**31 - 1)).astype("<i4").tobytes())
        else:
            w.writeframes(((np.clip(data, -1, 1) * 127) + 128).astype(np.uint8).tobytes())
    return path


def tone(rate: int, seconds: float, hz: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_frames_are_20ms_at_16k_stamped_with_call_time(tmp_path: Path) -> None:
    stereo = np.stack([tone(16000, 1.0, 440), tone(16000, 1.0, 660)], axis=1)
    frames = list(iter_call_frames(write_wav(tmp_path / "c.wav", stereo, 16000)))
    assert len(frames) == 50
    assert [f.t for f in frames[:3]] == [0.0, 0.02, 0.04]
    assert all(len(f.rep) == FRAME_SAMPLES and f.rep.dtype == np.float32 for f in frames)
    np.testing.assert_allclose(np.concatenate([f.rep for f in frames]), stereo[:, 0], atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_any_sample_rate_is_resampled_to_16k(tmp_path: Path, rate: int) -> None:
    stereo = np.stack([tone(rate, 2.0, 300), tone(rate, 2.0, 1000)], axis=1)
    frames = list(iter_call_frames(write_wav(tmp_path / "c.wav", stereo, rate)))
    assert abs(len(frames) - 100) <= 1
    rep = np.concatenate([f.rep for f in frames])[4000:28000]
    spectrum = np.abs(np.fft.rfft(rep))
    assert abs(np.argmax(spectrum) * 16000 / len(rep) - 300) < 5  # the tone survives at its pitch


def test_channel_map_swaps_parties(tmp_path: Path) -> None:
    three = np.stack([tone(16000, 0.2, 100), tone(16000, 0.2, 200, 0.1), tone(16000, 0.2, 300, 0.9)], axis=1)
    path = write_wav(tmp_path / "c.wav", three, 16000)
    frame = next(iter_call_frames(path, parse_channel_map("2,1")))
    assert np.max(np.abs(frame.rep)) > 0.8 and np.max(np.abs(frame.buyer)) < 0.15


def test_8bit_and_32bit_pcm_decode(tmp_path: Path) -> None:
    stereo = np.stack([tone(16000, 0.1, 440), tone(16000, 0.1, 440)], axis=1)
    for width in (1, 4):
        frames = list(iter_call_frames(write_wav(tmp_path / f"w{width}.wav", stereo, 16000, width)))
        np.testing.assert_allclose(frames[0].rep, stereo[:FRAME_SAMPLES, 0], atol=0.02)


def test_mono_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "mono.wav", tone(16000, 0.5, 440), 16000)
    with pytest.raises(AudioInputError, match="1 channel; a call needs two"):
        list(iter_call_frames(path))


def test_channel_beyond_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "c.wav", np.zeros((1600, 2), np.float32), 16000)
    with pytest.raises(AudioInputError, match="asks for 0,3"):
        list(iter_call_frames(path, (0, 3)))


@pytest.mark.parametrize("text", ["0", "a,b", "1,1", "-1,0", "0,1,2"])
def test_bad_channel_maps(text: str) -> None:
    with pytest.raises(AudioInputError):
        parse_channel_map(text)


def test_not_a_wav_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples")
    with pytest.raises(AudioInputError, match="not a readable PCM WAV"):
        probe_wav(path)


def test_header_only_fragment(tmp_path: Path) -> None:
    full = write_wav(tmp_path / "c.wav", np.zeros((1600, 2), np.float32), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:30])
    with pytest.raises(AudioInputError, match="not a readable PCM WAV"):
        probe_wav(cut)


def test_truncated_data_replays_what_is_there(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stereo = np.stack([tone(16000, 2.0, 440), tone(16000, 2.0, 440)], axis=1)
    full = write_wav(tmp_path / "c.wav", stereo, 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: 44 + 16000 * 4])  # header promises 2 s, holds 1 s
    frames = list(iter_call_frames(cut))
    assert len(frames) == 50
    assert "truncated" in caplog.text


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="no such file"):
        probe_wav(tmp_path / "absent.wav")
    with pytest.raises(AudioInputError, match="directory"):
        probe_wav(tmp_path)


def test_float_wav_is_rejected_clearly(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "c.wav", np.zeros((160, 2), np.float32), 16000)
    data = bytearray(path.read_bytes())
    data[20:22] = (3).to_bytes(2, "little")  # WAVE_FORMAT_IEEE_FLOAT
    path.write_bytes(bytes(data))
    with pytest.raises(AudioInputError, match="not a readable PCM WAV"):
        probe_wav(path)
