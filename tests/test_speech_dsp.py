"""Onset refinement and the VAD's level normaliser, on the rendered demo call (phone-band buyer)."""

from __future__ import annotations

import dataclasses
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from firmware.config import Config
from firmware.speech.bandfill import fill_empty_band, high_band_share_db
from firmware.speech.level import LevelNormaliser
from firmware.speech.onset import audible_since, level_db, refine_onset
from firmware.speech.vad import LevelledVad, SileroVad

RATE = 16000


def _channel(path: Path, channel: int) -> np.ndarray:
    with wave.open(str(path)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, wav.getnchannels())
    return pcm[:, channel].astype(np.float32) / 32768.0


def _buyer_lines(demo_call: Path) -> list[tuple[float, float]]:
    truth = json.loads(demo_call.with_suffix(".json").read_text())
    return [(u["start"], u["end"]) for u in truth["utterances"] if u["speaker"] == "buyer"]


def _refine(audio: np.ndarray, onset_s: float) -> float:
    onset = int(onset_s * RATE)
    context = audio[max(0, onset - 3 * RATE) : onset]
    found = refine_onset(context, len(context), lookback=int(0.6 * RATE), margin_db=10.0, max_gap=int(0.15 * RATE))
    return (onset - len(context) + found) / RATE


def test_onset_moves_back_to_where_the_speech_begins(demo_call: Path) -> None:
    buyer = _channel(demo_call, 1)
    lines = _buyer_lines(demo_call)
    for start, _ in lines:
        for late_s in (0.05, 0.1):  # an estimate inside the first word
            assert _refine(buyer, start + late_s) == pytest.approx(start, abs=0.03), (start, late_s)
    # The line Silero flags ~0.5 s late ("We already use Gong ..."): soft phone-band "We al-".
    gong = next(start for start, _ in lines if 28.0 < start < 29.0)
    assert _refine(buyer, gong + 0.5) == pytest.approx(gong, abs=0.03)


def test_onset_bridges_short_dips_but_not_a_pause() -> None:
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(4 * RATE).astype(np.float32) * np.float32(0.005)  # -46 dBFS line noise
    for lo, hi in ((2.0, 2.2), (2.3, 3.0)):  # a word, a 0.1 s dip, more speech
        audio[int(lo * RATE) : int(hi * RATE)] *= 20
    assert _refine(audio, 2.6) == pytest.approx(2.0, abs=0.01)
    audio[int(2.2 * RATE) : int(2.5 * RATE)] = audio[: int(0.3 * RATE)]  # now a 0.3 s pause
    assert _refine(audio, 2.6) == pytest.approx(2.5, abs=0.01)


def test_onset_in_silence_before_speech_stays_put(demo_call: Path) -> None:
    buyer = _channel(demo_call, 1)
    for start, _ in _buyer_lines(demo_call):
        onset = int((start - 0.1) * RATE)  # an estimate that is already early: only line noise before it
        context = buyer[onset - 3 * RATE : onset]
        found = refine_onset(context, len(context), lookback=int(0.6 * RATE), margin_db=10.0,
                             max_gap=int(0.15 * RATE))
        assert found >= len(context) - int(0.01 * RATE)


def test_onset_refinement_never_reaches_past_its_lookback() -> None:
    loud = np.full(3 * RATE, 0.1, np.float32)  # "speech" all the way back
    quiet_start = np.concatenate((np.full(RATE, 1e-3, np.float32), loud))
    found = refine_onset(quiet_start, len(quiet_start), lookback=int(0.5 * RATE), margin_db=10.0, max_gap=0)
    assert len(quiet_start) - found == int(0.5 * RATE)


def test_level_normaliser_lifts_quiet_speech_to_the_target_and_caps_the_gain(demo_call: Path) -> None:
    buyer = _channel(demo_call, 1) * np.float32(10 ** (-3 / 20))  # peaks near -20 dBFS: a quiet line
    normaliser = LevelNormaliser(target_peak_db=-6.0, max_gain_db=20.0, release_db_per_s=1.0)
    out = np.concatenate([normaliser(buyer[i : i + 320]) for i in range(0, len(buyer) - 319, 320)])
    for start, end in _buyer_lines(demo_call)[1:]:  # once the first line has set the peak
        line = out[int(start * RATE) : int(end * RATE)]
        frames = line[: len(line) // 320 * 320].reshape(-1, 320)  # the normaliser's own 20 ms frames
        peak = float(10 * np.log10(np.max((frames.astype(np.float64) ** 2).mean(axis=1))))
        assert peak == pytest.approx(-6.0, abs=1.5), (start, peak)
    capped = LevelNormaliser(target_peak_db=-6.0, max_gain_db=10.0, release_db_per_s=1.0)
    noise = np.random.default_rng(1).standard_normal(20 * RATE).astype(np.float32) * np.float32(1e-3)
    gains = []
    for i in range(0, len(noise), 320):
        capped(noise[i : i + 320])
        gains.append(capped.gain_db)
    assert max(gains) == 10.0  # a long silence never boosts line noise past the cap


def _onset_delays(vad: object, audio: np.ndarray, lines: list[tuple[float, float]]) -> tuple[list[float], float]:
    """Per line, how long after its start the VAD first flags speech; and the flagged share of silence."""
    flags = np.array([vad.accept(audio[i : i + 320]) for i in range(0, len(audio) - 319, 320)])  # type: ignore[attr-defined]
    t = (np.arange(len(flags)) + 1) * 0.02
    delays = []
    for start, end in lines:
        hits = np.flatnonzero((t >= start) & (t <= end) & flags)
        delays.append(float(t[hits[0]] - start) if len(hits) else end - start)
    silent = np.array([all(x < s - 0.2 or x > e + 1.0 for s, e in lines) for x in t])
    return delays, float(flags[silent].mean())


def test_levelled_vad_flags_a_quiet_line_sooner_and_never_flags_its_noise(models_dir: Path, demo_call: Path) -> None:
    vad_path = models_dir / "silero-vad" / "current" / "silero_vad.onnx"
    config = Config().speech
    level = config.vad_level
    assert "buyer" in level.parties and level.max_gain_db > 0
    buyer = _channel(demo_call, 1) * np.float32(10 ** (-10 / 20))  # peaks near -27 dBFS
    lines = _buyer_lines(demo_call)
    plain, plain_false = _onset_delays(SileroVad(vad_path, config.vad), buyer, lines)
    normaliser = LevelNormaliser(level.target_peak_db, level.max_gain_db, level.release_db_per_s)
    levelled, levelled_false = _onset_delays(LevelledVad(SileroVad(vad_path, config.vad), normaliser), buyer, lines)
    assert all(b <= a + 0.04 for a, b in zip(plain, levelled)), (plain, levelled)
    assert sum(levelled) < sum(plain) - 0.3, (plain, levelled)
    assert levelled_false <= 0.01 and plain_false <= 0.01


def _phone_band(audio: np.ndarray) -> np.ndarray:
    """What a softphone plays out for an 8 kHz call: resampled down and back up."""
    import soxr

    return soxr.resample(soxr.resample(audio, RATE, 8000), 8000, RATE)[: len(audio)].astype(np.float32)


def test_band_fill_gives_a_phone_line_a_faint_high_band_and_leaves_the_speech_alone(demo_call: Path) -> None:
    truth = json.loads(demo_call.with_suffix(".json").read_text())
    first = next(u for u in truth["utterances"] if u["speaker"] == "rep")
    speech = _channel(demo_call, 0)[int(first["start"] * RATE) : int(first["end"] * RATE)]
    phone = _phone_band(speech)
    assert high_band_share_db(phone) < -40.0
    filled = fill_empty_band(phone, level_db=-35.0, empty_below_db=-40.0)
    assert high_band_share_db(filled) == pytest.approx(-35.0, abs=1.0)
    low = np.fft.rfftfreq(len(phone), 1 / RATE) < 4000
    diff = np.abs(np.fft.rfft(filled) - np.fft.rfft(phone))[low]
    assert diff.max() < 1e-3 * np.abs(np.fft.rfft(phone))[low].max()  # the speech band is untouched
    assert np.array_equal(filled, fill_empty_band(phone, level_db=-35.0, empty_below_db=-40.0))  # replayable


def test_band_fill_leaves_wideband_speech_as_it_is(demo_call: Path) -> None:
    wideband = _channel(demo_call, 0)[RATE : 6 * RATE]  # the rep's headset mic
    assert high_band_share_db(wideband) > -40.0
    assert fill_empty_band(wideband, level_db=-35.0, empty_below_db=-40.0) is wideband
    assert len(fill_empty_band(np.zeros(1, np.float32), level_db=-35.0, empty_below_db=-40.0)) == 1


def test_audible_since_hears_speech_the_vad_has_not_flagged_yet(demo_call: Path) -> None:
    buyer = _channel(demo_call, 1)
    for start, end in _buyer_lines(demo_call):
        for now_s, expect in ((end + 0.6, False), (start + 0.1, True)):  # after the line; just into it
            now = int(now_s * RATE)
            context = buyer[now - 3 * RATE : now]
            assert audible_since(context, len(context) - int(0.23 * RATE), margin_db=10.0) is expect, (start, now_s)
    assert audible_since(np.zeros(RATE, np.float32), 0, margin_db=10.0)  # digital silence: cannot tell


def test_closing_on_quiet_closes_sooner_with_the_same_segments(models_dir: Path, demo_call: Path) -> None:
    from firmware.audio.wavfile import iter_call_frames
    from firmware.speech.pipeline import SpeechPipeline

    class Echo:
        name = "echo"

        def transcribe(self, samples: np.ndarray) -> str:
            return "words"

    def run(close_on_quiet: bool) -> list[tuple[str, float, float, float]]:
        # Final segments only: early (partial) transcripts do not depend on when a segment closes.
        config = dataclasses.replace(Config().speech, close_on_quiet=close_on_quiet, partial_parties=())
        vad_path = models_dir / "silero-vad" / "current" / "silero_vad.onnx"
        out: list = []  # type: ignore[type-arg]
        pipeline = SpeechPipeline(config, lambda: SileroVad(vad_path, config.vad), Echo(), out.append, lockstep=True)
        pipeline.start()
        for frame in iter_call_frames(demo_call):
            pipeline.feed(frame)
        pipeline.finish()
        pipeline.stop()
        return [(u.speaker, u.start, u.end, u.t) for u in out]

    waiting, quick = run(False), run(True)
    assert [s[:3] for s in quick] == [s[:3] for s in waiting]
    join_gap = Config().speech.join_gap_s
    closed_on_quiet = [q[3] - q[2] for q in quick[:-1]]  # the last segment closes at the call's end
    assert all(delay <= join_gap + 0.05 for delay in closed_on_quiet), closed_on_quiet
    assert all(q[3] < w[3] for q, w in zip(quick[:-1], waiting[:-1]))
