"""Every setting has a declared range, and no value of any setting gets past the loader into a run
that misbehaves: random values either are refused with one clear line naming the key, or load
and run a short call (fake VAD and recogniser, the real speech pipeline and coach) within the
normal bounds of output and work."""

from __future__ import annotations

import dataclasses
import io
import math
import tempfile
import typing
import wave
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from firmware.config import Config, from_mapping
from firmware.errors import ConfigError
from firmware.settings import ALLOWED, Allowed

CALL_S = 2.0
RATE = 16000


# -- the settings tree --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Leaf:
    key: tuple[str, ...]
    hint: Any
    allowed: Allowed | None
    default: Any


def leaves(cls: type = Config, prefix: tuple[str, ...] = ()) -> Iterator[Leaf]:
    hints = typing.get_type_hints(cls)
    instance = cls()
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from leaves(hint, (*prefix, f.name))  # type: ignore[arg-type]
        else:
            yield Leaf((*prefix, f.name), hint, f.metadata.get(ALLOWED), getattr(instance, f.name))


LEAVES = list(leaves())
NUMERIC = (int, float, int | None, float | None)


def test_every_setting_declares_what_it_allows() -> None:
    assert len(LEAVES) > 100
    undeclared = [".".join(leaf.key) for leaf in LEAVES if leaf.allowed is None]
    assert undeclared == [], "declare these with firmware.settings.setting()"
    unbounded = [".".join(leaf.key) for leaf in LEAVES if leaf.hint in NUMERIC and not leaf.allowed.bounded]  # type: ignore[union-attr]
    assert unbounded == [], "numbers need a range"
    # The defaults are inside their own ranges (Config() would not build otherwise).
    assert all(leaf.allowed.allows(leaf.default) for leaf in LEAVES)  # type: ignore[union-attr]


# -- values -------------------------------------------------------------------------------------
JUNK = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.text(max_size=4),
    st.lists(st.sampled_from(["rep", "buyer", "led", "haptic", "phone", "x"]), max_size=3),
)


def in_range(leaf: Leaf) -> st.SearchStrategy[Any]:
    """A TOML value the declaration allows (relations between settings may still refuse it)."""
    allowed, hint = leaf.allowed, leaf.hint
    assert allowed is not None
    if allowed.choices is not None:
        return st.sampled_from(allowed.choices)
    origin = typing.get_origin(hint)
    if hint is bool:
        return st.booleans()
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    if origin is tuple:
        (item,) = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return st.lists(st.sampled_from(typing.get_args(item)), unique=True).map(list)
    if hint in (int, int | None):
        lo = allowed.ge if allowed.ge is not None else (allowed.gt + 1 if allowed.gt is not None else -1000)
        hi = allowed.le if allowed.le is not None else (allowed.lt - 1 if allowed.lt is not None else 10**6)
        return st.integers(min_value=int(lo), max_value=int(hi))
    if hint in (float, float | None):
        lo = allowed.ge if allowed.ge is not None else allowed.gt
        hi = allowed.le if allowed.le is not None else allowed.lt
        return st.floats(min_value=lo, max_value=hi, exclude_min=allowed.gt is not None, exclude_max=allowed.lt is not None,
                         allow_nan=False, allow_infinity=False)
    return st.just(leaf.default if not isinstance(leaf.default, Path) else str(leaf.default))


# Paths and names of models stay at their defaults in the runs (other tests refuse bad ones): a
# random path is a missing file, not a setting out of range.
TUNABLE = [leaf for leaf in LEAVES if leaf.hint not in (str, Path)]


@st.composite
def overrides(draw: st.DrawFn, junk: bool) -> dict[tuple[str, ...], Any]:
    """Up to five settings: values their own declaration allows (which may still contradict
    another setting), and with ``junk`` also anything TOML can hold."""
    chosen = draw(st.lists(st.sampled_from(TUNABLE), min_size=1, max_size=5, unique_by=lambda leaf: leaf.key))
    return {leaf.key: draw(st.one_of(in_range(leaf), JUNK) if junk else in_range(leaf)) for leaf in chosen}


def as_table(values: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, value in values.items():
        node = table
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = value
    return table


# -- the short run ------------------------------------------------------------------------------
class FakeVad:
    """Flags speech by level, with the onset and release delays a VAD has."""

    def __init__(self, threshold: float, onset_s: float, release_s: float) -> None:
        self.onset_s, self.release_s, self._threshold = onset_s, release_s, threshold
        self._loud_s = self._quiet_s = 0.0
        self._flag = False

    def accept(self, samples: np.ndarray) -> bool:
        seconds = len(samples) / RATE
        loud = min(1.0, float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) * 10) > self._threshold
        self._loud_s, self._quiet_s = (self._loud_s + seconds, 0.0) if loud else (0.0, self._quiet_s + seconds)
        if not self._flag and self._loud_s >= self.onset_s:
            self._flag = True
        elif self._flag and self._quiet_s >= self.release_s:
            self._flag = False
        return self._flag


class FakeRecognizer:
    name = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, samples: np.ndarray) -> str:
        self.calls += 1
        return "that is more than we budgeted, who else do you work with?"


class FakeIntent:
    labels = ("objection_price", "other")

    def threshold_for(self, speaker: str | None = None) -> float:
        return 0.4

    def classify(self, text: str, speaker: str | None = None) -> tuple[str, float, Mapping[str, float]]:
        return "objection_price", 0.9, {"objection_price": 0.9, "other": 0.1}


def short_call(path: Path) -> Path:
    """Two seconds: the rep speaks 0.1-0.9 s, the buyer 1.0-1.8 s (loud noise stands in for speech)."""
    t = np.arange(int(CALL_S * RATE)) / RATE
    noise = np.random.default_rng(5).normal(0, 0.3, t.size)
    rep = np.where((t > 0.1) & (t < 0.9), noise, 0.0)
    buyer = np.where((t > 1.0) & (t < 1.8), noise[::-1], 0.0)
    data = (np.clip(np.stack([rep, buyer], axis=1), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data.tobytes())
    return path


@pytest.fixture(scope="module")
def call_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_call(tmp_path_factory.mktemp("call") / "call.wav")


def run_short_call(config: Config, wav: Path) -> tuple[list[Any], FakeRecognizer]:
    from firmware.bus import EventBus
    from firmware.coach.build import CoachBox
    from firmware.coach.session import CoachedSession
    from firmware.cues.pins import make_pin_factory
    from firmware.replay import replay_call
    from firmware.runtime import CallSession, Engines

    recognizer = FakeRecognizer()
    vad = config.speech.vad
    engines = Engines(
        vad_factory=lambda: FakeVad(vad.threshold, vad.min_speech_s + 0.084, vad.min_silence_s),
        recognizer=recognizer,
        intent=FakeIntent(),  # type: ignore[arg-type]
    )
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(events.append)
    with tempfile.TemporaryDirectory(prefix="parallax-prop-") as state:
        config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, state_dir=Path(state)))
        box = CoachBox(config, pin_factory=make_pin_factory("mock"), cue_view=io.StringIO())
        try:
            with CallSession(config, engines, bus, lockstep=True) as session:
                coached = CoachedSession(session, box, bus)
                try:
                    replay_call(wav, coached)
                finally:
                    coached.close()
        finally:
            box.close()
    assert bus.handler_errors == 0
    return events, recognizer


def test_the_defaults_run_the_short_call(call_wav: Path) -> None:
    events, recognizer = run_short_call(Config(), call_wav)
    kinds = [e.type for e in events]
    assert kinds.count("utterance") == 2 and kinds[-1] == "summary" and recognizer.calls >= 2


def check_refusal(exc: ConfigError, values: Mapping[tuple[str, ...], Any]) -> str:
    """One line, naming one of the keys that were set (alone, or in a relation)."""
    message = str(exc)
    assert "\n" not in message and "Traceback" not in message
    assert any(".".join(key) in message or f"[{'.'.join(key[:-1])}]" in message for key in values), message
    return message


@settings(max_examples=300, deadline=None, database=None)
@given(values=overrides(junk=True))
def test_any_value_of_any_setting_loads_or_is_refused_in_one_line(values: dict[tuple[str, ...], Any]) -> None:
    try:
        config = from_mapping(Config, as_table(values), where="")
    except ConfigError as exc:
        check_refusal(exc, values)
        note("refused")
        return
    note("loaded")
    for key, value in values.items():  # what loaded is what was asked for
        got: Any = config
        for part in key:
            got = getattr(got, part)
        assert got == (tuple(value) if isinstance(value, list) else value), key


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=overrides(junk=False))
def test_allowed_settings_run_a_call_within_bounds(values: dict[tuple[str, ...], Any], call_wav: Path) -> None:
    try:
        config = from_mapping(Config, as_table(values), where="")
    except ConfigError as exc:
        # Each value is in its own range: only a relation between settings can refuse it.
        assert "do not fit together" in check_refusal(exc, values)
        note("refused by a relation")
        return
    note("ran")
    events, recognizer = run_short_call(config, call_wav)
    kinds = [e.type for e in events]
    summary = events[-1]
    assert kinds[-1] == "summary" and kinds.count("summary") == 1
    assert math.isclose(summary.duration_s, CALL_S, abs_tol=0.05)
    # Output and work stay what two 0.8 s turns can make: at most a segment or two per party, a
    # partial every half second at most, never more tips than the cap.
    assert kinds.count("utterance") <= 4, kinds
    assert recognizer.calls <= 4 + 2 * int(CALL_S / 0.5), recognizer.calls
    assert kinds.count("tip") <= config.coach.delivery.max_tips_per_call
    for event in events:
        for name, value in dataclasses.asdict(event).items():
            if isinstance(value, float):
                assert math.isfinite(value), (event.type, name, value)


def _vad_edges() -> list[dict[str, float]]:
    """Each VAD setting at the ends of its declared range (just inside an open end)."""
    from firmware.speech.config import VadConfig

    edges = []
    for f in dataclasses.fields(VadConfig):
        allowed: Allowed = f.metadata[ALLOWED]
        for end, nudge in ((allowed.ge, 0.0), (allowed.gt, 1e-6), (allowed.le, 0.0), (allowed.lt, -1e-6)):
            if end is not None:
                edges.append({f.name: end + nudge})
    return edges


@pytest.mark.parametrize("edge", _vad_edges(), ids=str)
def test_the_real_vad_takes_every_allowed_edge_quietly(edge: dict[str, float], models_dir: Path,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    """The sherpa-onnx Silero VAD accepts each edge of the declared ranges without printing errors
    (a negative min_speech_s once printed a thousand lines of them)."""
    from firmware.speech.config import VadConfig
    from firmware.speech.vad import SileroVad

    vad = SileroVad(models_dir / "silero-vad" / "silero_vad.onnx", VadConfig(**edge))  # type: ignore[arg-type]
    noise = np.random.default_rng(1).normal(0, 0.2, RATE).astype(np.float32)
    for i in range(0, noise.size, 320):
        vad.accept(noise[i : i + 320])
    out, err = capfd.readouterr()
    assert out == "" and err == ""
