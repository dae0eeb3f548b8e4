"""Bad input, command by command: one line on stderr, a documented exit status, nothing changed.

Every case in the table builds its inputs in a fresh folder, runs one ``parallax`` command in
this process, and checks: the exit status (README "Exit status"), exactly one stderr line and
no traceback, the fragment that says what is wrong, and that no file in the folder changed and
none appeared (inputs untouched, no output half-written). Outputs that do get written are
checked for atomicity separately, including a replay killed by SIGTERM.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from coach_support import FIXTURE_CALL

from firmware.atomic import atomic_write
from firmware.cli.main import main
from firmware.errors import EXIT_BAD_INPUT, EXIT_DEVICE_IO, EXIT_OK, EXIT_TERMINATED, StorageError

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# -- inputs ------------------------------------------------------------------------------------
def stereo_wav(path: Path, seconds: float = 2.0, channels: int = 2, rate: int = 16000) -> Path:
    rng = np.random.default_rng(1)
    data = (rng.normal(0, 0.01, (int(rate * seconds), channels)) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def float_wav(path: Path) -> Path:
    stereo_wav(path)
    data = bytearray(path.read_bytes())
    data[20:22] = (3).to_bytes(2, "little")  # WAVE_FORMAT_IEEE_FLOAT
    path.write_bytes(bytes(data))
    return path


def config_file(d: Path, text: str = "") -> Path:
    path = d / "parallax.toml"
    path.write_text(f'[paths]\nstate_dir = "{d / "state"}"\n{text}', encoding="utf-8")
    return path


def truth(d: Path, **change: object) -> Path:
    raw = json.loads(FIXTURE_CALL.read_text(encoding="utf-8"))
    raw.update(change)
    path = d / "call.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def relabelled_truth(d: Path) -> Path:
    raw = json.loads(FIXTURE_CALL.read_text(encoding="utf-8"))
    raw["utterances"][0]["label"] = "objection_weather"
    path = d / "call.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


# -- the table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path], list[str]]  # builds the inputs in the folder, returns the arguments
    status: int
    fragment: str
    root_sees_through: bool = False  # permission cases: root may read and write anything


def _replay(d: Path, *extra: str, wav: Callable[[Path], Path] | None = None) -> list[str]:
    call = (wav or stereo_wav)(d / "call.wav")
    return ["--config", str(config_file(d)), "replay", str(call), *extra]


def _linked(kind: str) -> Callable[[Path], list[str]]:
    def build(d: Path) -> list[str]:
        call = stereo_wav(d / "call.wav")
        link = d / "link.wav"
        os.symlink(call, link) if kind == "symlink" else os.link(call, link)
        return ["replay", str(call), "--report", str(link)]

    return build


def _readonly_folder(d: Path) -> list[str]:
    folder = d / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    return _replay(d, "--json", str(folder / "out.jsonl"))


def _unreadable_wav(d: Path) -> list[str]:
    args = _replay(d)
    (d / "call.wav").chmod(0)
    return args


def _truncated_header(d: Path) -> Path:
    stereo_wav(d / "call.wav")
    data = (d / "call.wav").read_bytes()[:30]
    (d / "call.wav").write_bytes(data)
    return d / "call.wav"


CASES = [
    # replay: outputs
    Case("replay --json is the input", lambda d: _replay(d, "--json", str(d / "call.wav")), 2, "refusing to overwrite an input"),
    Case("replay --report is the input", lambda d: _replay(d, "--report", str(d / "call.wav")), 2, "is the input"),
    Case("replay --report is a symlink to the input", _linked("symlink"), 2, "is the input"),
    Case("replay --report is a hard link to the input", _linked("hardlink"), 2, "is the input"),
    Case("replay --json is the config file", lambda d: _replay(d, "--json", str(d / "parallax.toml")), 2, "is the input"),
    Case("replay --json and --report the same file",
         lambda d: _replay(d, "--json", str(d / "o.txt"), "--report", str(d / "o.txt")), 2, "are the same file"),
    Case("replay --json into a missing folder", lambda d: _replay(d, "--json", str(d / "no" / "x.jsonl")), 2, "does not exist"),
    Case("replay --report into a folder path", lambda d: _replay(d, "--report", str(d)), 2, "is a folder"),
    Case("replay --json into a read-only folder", _readonly_folder, 2, "is not writable", root_sees_through=True),
    Case("replay --json - and --report -", lambda d: _replay(d, "--json", "-", "--report", "-"), 2, "both ask for stdout"),
    Case("replay --json empty name", lambda d: _replay(d, "--json", ""), 2, "needs a file name"),
    Case("replay mono with --json", lambda d: _replay(d, "--json", str(d / "out.jsonl"), wav=lambda p: stereo_wav(p, channels=1)),
         2, "a call needs two"),
    # replay: the recording
    Case("replay an empty file", lambda d: _replay(d, wav=lambda p: (p.write_bytes(b""), p)[1]), 2, "the file is empty (0 bytes)"),
    Case("replay a float WAV", lambda d: _replay(d, wav=float_wav), 2, "sox"),
    Case("replay a text file", lambda d: _replay(d, wav=lambda p: (p.write_text("hello"), p)[1]), 2, "not a readable PCM WAV"),
    Case("replay a truncated header", lambda d: _replay(d, wav=lambda p: _truncated_header(d)), 2, "ends inside the header"),
    Case("replay a missing file", lambda d: ["replay", str(d / "absent.wav")], 2, "no such file"),
    Case("replay a folder", lambda d: ["replay", str(d)], 2, "is a directory"),
    Case("replay an unreadable file", _unreadable_wav, 2, "permission denied", root_sees_through=True),
    Case("replay a WAV with no frames", lambda d: _replay(d, wav=lambda p: stereo_wav(p, seconds=0)), 2, "holds no audio"),
    # replay: options
    Case("replay --channels=-1,1", lambda d: _replay(d, "--channels=-1,1"), 2, "from 0"),
    Case("replay --channels=1,1", lambda d: _replay(d, "--channels=1,1"), 2, "two different channels"),
    Case("replay --channels=0,5", lambda d: _replay(d, "--channels=0,5"), 2, "has 2 channels (0..1)"),
    Case("replay --channels=a,b", lambda d: _replay(d, "--channels=a,b"), 2, "REP,BUYER"),
    Case("replay --speed 0", lambda d: _replay(d, "--speed", "0"), 2, "--speed"),
    Case("replay --speed nan", lambda d: _replay(d, "--speed", "nan"), 2, "--speed"),
    Case("replay --speed fast", lambda d: _replay(d, "--speed", "fast"), 2, "--speed"),
    Case("replay with no file", lambda d: ["replay"], 2, "required: call"),
    # configuration, through every command
    Case("config missing", lambda d: ["--config", str(d / "absent.toml"), "coach", "check"], 2, "not found"),
    Case("config not TOML", lambda d: ["--config", str(config_file(d, "[speech\n")), "replay", str(stereo_wav(d / "c.wav"))],
         2, "not valid TOML"),
    Case("config a negative max_segment_s",
         lambda d: ["--config", str(config_file(d, "[speech]\nmax_segment_s = -1.0\n")), "replay", str(stereo_wav(d / "c.wav"))],
         2, "speech.max_segment_s = -1.0 is not allowed (allowed: 1 <= x <= 30)"),
    Case("config a negative vad.min_speech_s", lambda d: ["--config", str(config_file(d, "[speech.vad]\nmin_speech_s = -0.5\n")), "demo"],
         2, "speech.vad.min_speech_s = -0.5 is not allowed"),
    Case("config queue_segments = 0", lambda d: ["--config", str(config_file(d, "[speech]\nqueue_segments = 0\n")), "run"],
         2, "speech.queue_segments = 0 is not allowed (allowed: 1 <= x <= 1000)"),
    Case("config a VAD threshold of 5", lambda d: ["--config", str(config_file(d, "[speech.vad]\nthreshold = 5.0\n")), "intent", "hi"],
         2, "speech.vad.threshold = 5.0 is not allowed (allowed: 0 < x < 1)"),
    Case("config questions_target_min above max",
         lambda d: ["--config", str(config_file(d, "[coach.dynamics]\nquestions_target_min = 20\n")), "coach", "simulate", str(FIXTURE_CALL)],
         2, "need questions_target_min <= questions_target_max"),
    Case("config expected_call_s = 0", lambda d: ["--config", str(config_file(d, "[coach.dynamics]\nexpected_call_s = 0.0\n")), "coach", "check"],
         2, "coach.dynamics.expected_call_s = 0.0 is not allowed"),
    Case("config a negative talk-ratio bound",
         lambda d: ["--config", str(config_file(d, "[coach.dynamics]\ntalk_ratio_max = -0.1\n")), "coach", "reset"],
         2, "talk_ratio_max = -0.1 is not allowed (allowed: 0 <= x <= 1)"),
    Case("config inf", lambda d: ["--config", str(config_file(d, "[cues]\ntip_led_s = inf\n")), "coach", "check"], 2, "cues.tip_led_s = inf"),
    Case("config a bridge rate", lambda d: ["--config", str(config_file(d, "[bridge]\nrate_hz = 44100\n")), "bridge", "--latency"],
         2, "bridge.rate_hz = 44100 is not allowed (allowed: one of 16000, 32000, 48000, 96000)"),
    Case("config an unknown key", lambda d: ["--config", str(config_file(d, "[speech]\nmax_segment = 3\n")), "coach", "check"],
         2, "unknown key(s) max_segment"),
    Case("config a wrong type", lambda d: ["--config", str(config_file(d, "[intent]\nnum_threads = 'two'\n")), "intent", "hi"],
         2, "intent.num_threads: expected int"),
    Case("config a channel twice",
         lambda d: ["--config", str(config_file(d, '[coach.delivery]\nchannels = ["led", "led"]\n')), "coach", "check"],
         2, "no item twice"),
    Case("config an unknown skill level", lambda d: ["--config", str(config_file(d, '[coach]\nskill_level = "guru"\n')), "coach", "check"],
         2, "'guru' is not one of"),
    # coach simulate
    Case("simulate an unknown label", lambda d: ["coach", "simulate", str(relabelled_truth(d))], 2, "unknown label 'objection_weather'"),
    Case("simulate endless duration", lambda d: ["coach", "simulate", str(truth(d, duration_s=1e12))], 2, "duration_s"),
    Case("simulate not JSON", lambda d: ["coach", "simulate", str((d / "c.json", (d / "c.json").write_text("{"))[0])], 2, "not valid JSON"),
    Case("simulate --report is the input",
         lambda d: ["coach", "simulate", str(truth(d)), "--report", str(d / "call.json")], 2, "is the input"),
    Case("simulate --json into a folder", lambda d: ["coach", "simulate", str(truth(d)), "--json", str(d)], 2, "is a folder"),
    Case("simulate --delay -1", lambda d: ["coach", "simulate", str(truth(d)), "--delay", "-1"], 2, "--delay"),
    # coach check, reset, skill
    Case("check a missing playbook", lambda d: ["coach", "check", str(d / "absent.toml")], 2, "not found"),
    Case("check a broken playbook", lambda d: ["coach", "check", str((d / "p.toml", (d / "p.toml").write_text("x = [")).__getitem__(0))],
         2, "not valid TOML"),
    Case("skill for an empty rep", lambda d: ["--config", str(config_file(d)), "coach", "skill", " ", "new"], 2, "rep id is empty"),
    Case("skill an unknown level", lambda d: ["coach", "skill", "ana", "guru"], 2, "invalid choice: 'guru'"),
    # intent
    Case("intent with no text", lambda d: ["intent"], 2, "nothing to classify"),
    Case("intent with text and --jsonl", lambda d: ["intent", "hello", "--jsonl"], 2, "not both"),
    Case("intent with empty text", lambda d: ["intent", "  "], 2, "TEXT is empty"),
    # demo, run, bridge
    Case("demo --json into a missing folder", lambda d: ["demo", "--json", str(d / "no" / "e.jsonl")], 2, "does not exist"),
    Case("run --json into a folder", lambda d: ["run", "--json", str(d)], 2, "is a folder"),
    Case("run --idle-end 0", lambda d: ["run", "--idle-end", "0"], 2, "--idle-end"),
    Case("bridge --duration -1", lambda d: ["bridge", "--duration", "-1"], 2, "must be >= 0"),
    # the command line itself
    Case("an unknown command", lambda d: ["fly"], 2, "invalid choice: 'fly'"),
    Case("an unknown option", lambda d: ["replay", "x.wav", "--loud"], 2, "unrecognized arguments: --loud"),
]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (symlinks as their target) with its content hash."""
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            try:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            except PermissionError:
                out[rel] = f"unreadable {path.stat().st_size}"
        elif path.is_dir():
            out[rel + "/"] = ""
    return out


@pytest.fixture(autouse=True)
def _signals() -> Iterator[None]:
    """`run` and `bridge` install SIGINT/SIGTERM handlers: give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if case.root_sees_through and IS_ROOT:
        pytest.skip("root reads and writes regardless of permissions")
    work = tmp_path / "work"
    work.mkdir()
    argv = case.argv(work)
    before = snapshot(work)
    try:
        with pytest.raises(SystemExit) as exited:  # argparse's own refusals exit from parse_args
            raise SystemExit(main(argv))
    finally:
        for path in work.rglob("*"):  # let tmp_path's clean-up in again
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
    out, err = capsys.readouterr()
    assert exited.value.code == case.status, (out, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("parallax: error: "), err
    assert case.fragment in lines[0], lines[0]
    work.chmod(0o755)
    assert snapshot(work) == before  # no input changed, no output (or temporary file) left


def test_reset_of_an_unknown_rep_says_nothing_was_reset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from firmware.coach.mastery import MasteryStore

    config = config_file(tmp_path)
    assert main(["--config", str(config), "coach", "reset", "--rep", "nobody"]) == EXIT_OK
    assert "nothing to reset: no mastery recorded yet" in capsys.readouterr().out
    assert not (tmp_path / "state").exists()  # nothing written to say so
    store = MasteryStore.in_dir(tmp_path / "state")
    store.record("ana", "pain_point", handled_well=True, tipped=False)
    store.save()
    before = snapshot(tmp_path / "state")
    assert main(["--config", str(config), "coach", "reset", "--rep", "nobody"]) == EXIT_OK
    assert "nothing to reset: no mastery recorded for rep 'nobody'" in capsys.readouterr().out
    assert snapshot(tmp_path / "state") == before
    assert main(["--config", str(config), "coach", "reset", "--rep", "ana"]) == EXIT_OK
    assert "mastery reset for rep 'ana'" in capsys.readouterr().out


def test_reset_repairs_a_corrupt_mastery_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_file(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "mastery.json").write_text("{not json")
    assert main(["--config", str(config), "coach", "skill", "ana", "new"]) == EXIT_DEVICE_IO
    assert "corrupt; reset it with `parallax coach reset`" in capsys.readouterr().err
    assert main(["--config", str(config), "coach", "reset"]) == EXIT_OK  # what the message says works
    assert main(["--config", str(config), "coach", "skill", "ana", "new"]) == EXIT_OK


def test_reset_on_a_pc_uses_the_per_user_state_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import firmware.cli.coach as coach_cli

    monkeypatch.setattr(coach_cli, "DEVICE_STATE_DIR", tmp_path / "var-lib-parallax")  # absent: a PC
    config = tmp_path / "parallax.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path / "var-lib-parallax"}"\n')
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert main(["--config", str(config), "coach", "skill", "ana", "developing"]) == EXIT_OK
    out = capsys.readouterr().out
    assert (tmp_path / "xdg" / "parallax" / "mastery.json").is_file() and "per-user state folder" in out
    assert main(["--config", str(config), "coach", "reset", "--rep", "ana"]) == EXIT_OK
    assert "mastery reset for rep 'ana'" in capsys.readouterr().out


def test_three_channels_warn_that_one_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from firmware.audio.wavfile import check_channels, probe_wav

    info = probe_wav(stereo_wav(tmp_path / "three.wav", channels=3))
    check_channels(info, (0, 1))
    assert "ignoring channel 2 (see --channels)" in caplog.text
    caplog.clear()
    check_channels(info, (2, 0))
    assert "replaying 2 as the rep and 0 as the buyer, ignoring channel 1" in caplog.text


def test_a_full_disk_fails_the_command_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    call = stereo_wav(tmp_path / "call.wav")
    assert main(["coach", "simulate", str(truth(tmp_path)), "--json", "/dev/full"]) == EXIT_DEVICE_IO
    err = capsys.readouterr().err
    assert err.splitlines() == ["parallax: error: cannot write --json /dev/full: No space left on device (nothing was kept)"]
    assert main(["coach", "simulate", str(truth(tmp_path)), "--report", "/dev/full"]) == EXIT_DEVICE_IO
    assert capsys.readouterr().err.splitlines() == ["parallax: error: cannot write /dev/full: No space left on device"]
    assert call.is_file()


def test_report_dash_is_stdout_and_the_timeline_moves_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file(tmp_path)), "coach", "simulate", str(FIXTURE_CALL), "--report", "-"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out.startswith("<!DOCTYPE html>") and "RECAP  for the rep's phone" in err
    assert not (tmp_path / "-").exists() and not Path("-").exists()


def test_outputs_replace_old_files_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events, report = tmp_path / "events.jsonl", tmp_path / "call.html"
    events.write_text("old events\n")
    report.write_text("old report\n")
    report.chmod(0o640)
    argv = ["--config", str(config_file(tmp_path)), "coach", "simulate", str(FIXTURE_CALL),
            "--json", str(events), "--report", str(report)]
    assert main(argv) == EXIT_OK
    assert json.loads(events.read_text().splitlines()[-1])["type"] == "summary"
    assert report.read_text().startswith("<!DOCTYPE html>") and (report.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_atomic_write_leaves_the_old_file_on_any_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as out:
            out.write("half of the new")
            raise RuntimeError("the command failed")
    assert target.read_text() == "old"

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError, match="No space left on device"):
        with atomic_write(target) as out:
            out.write("new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_an_atomic_write_through_a_symlink_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with atomic_write(link) as out:
        out.write("new")
    assert link.is_symlink() and target.read_text() == "new"


def test_an_unexpected_exception_is_reported_as_a_bug(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import firmware.cli.intent as intent_cli

    def broken(args: object) -> int:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(intent_cli, "run", broken)
    assert main(["intent", "hello"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: boom" in err
    assert err.splitlines()[-1] == "parallax: error: internal error (a bug in parallax, please report it with the traceback above)"


def _parallax(*args: str, tmpdir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "firmware", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert proc.poll() is None, f"exited early: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("command", ["replay", "simulate"])
def test_sigterm_removes_the_temporary_folder_and_keeps_old_outputs(command: str, tmp_path: Path) -> None:
    if command == "replay":
        from conftest import _require_model

        _require_model("silero-vad")
        _require_model("whisper-tiny.en")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    events = tmp_path / "events.jsonl"
    events.write_text("the previous run's events\n")
    if command == "replay":
        args = ["replay", str(stereo_wav(tmp_path / "call.wav", seconds=60)), "--speed", "1"]
    else:
        args = ["coach", "simulate", str(FIXTURE_CALL), "--speed", "1"]
    proc = _parallax(*args, "--json", str(events), tmpdir=scratch)
    try:
        _wait_for(lambda: any(scratch.iterdir()), proc, "the temporary folder")
        part = lambda: [p for p in tmp_path.iterdir() if p.name.endswith(".part")]  # noqa: E731
        _wait_for(lambda: bool(part()), proc, "the output being written")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_TERMINATED, err
    assert err.splitlines()[-1] == "parallax: terminated" and "Traceback" not in err
    assert list(scratch.iterdir()) == []  # the temporary folder is gone
    assert events.read_text() == "the previous run's events\n"  # the old output survives whole
    assert part() == []


def test_sigterm_turned_into_another_error_by_a_native_library_still_reads_terminated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGTERM that lands while a model's native library loads: the library's own init (numpy's
    import_array, pybind11) turns our Terminated into an ImportError. Still status 143, one line."""
    import argparse

    import firmware.cli.main as cli

    def loading_a_native_library(args: argparse.Namespace) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises Terminated here
        except BaseException:
            raise ImportError("numpy.core.multiarray failed to import") from None
        return EXIT_OK

    def parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="parallax")
        p.add_argument("-v", "--verbose", action="count", default=0)
        p.set_defaults(handler=loading_a_native_library)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    previous = signal.getsignal(signal.SIGTERM)
    assert cli.main([]) == EXIT_TERMINATED
    assert capsys.readouterr().err.splitlines() == ["parallax: terminated"]
    assert signal.getsignal(signal.SIGTERM) is previous  # main() put the old handler back


@pytest.mark.parametrize("json_to_stdout", [False, True])
def test_a_reader_that_goes_away_ends_the_command_quietly(json_to_stdout: bool, tmp_path: Path) -> None:
    """`parallax coach simulate CALL | head -1`: status 0 and no traceback, although the timeline
    (or JSON) writers run on other threads when the pipe closes."""
    args = [sys.executable, "-m", "firmware", "coach", "simulate", str(FIXTURE_CALL), *(["--json", "-"] if json_to_stdout else [])]
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read()
    proc.stderr.close()
    proc.wait(timeout=60)
    assert first.strip() and proc.returncode == EXIT_OK, err
    assert "Traceback" not in err and "Broken pipe" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_readme_documents_every_exit_status() -> None:
    import firmware.errors as errors

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Exit status"):]
    for name in dir(errors):
        if name.startswith("EXIT_"):
            assert f"| {getattr(errors, name)} |" in table, name
    assert EXIT_BAD_INPUT == 2


def test_atomic_write_perms_sets_the_mode_of_a_new_and_an_existing_file(tmp_path: Path) -> None:
    from firmware.atomic import write_text_atomic

    new = tmp_path / "secret.json"
    old_umask = os.umask(0o022)
    try:
        write_text_atomic(new, "{}", perms=0o600)
        assert (new.stat().st_mode & 0o777) == 0o600  # not widened to the umask's 0644
        existing = tmp_path / "state.json"
        existing.write_text("old")
        existing.chmod(0o644)
        with atomic_write(existing, "wb", perms=0o600) as out:
            out.write(b"new")
        assert existing.read_bytes() == b"new" and (existing.stat().st_mode & 0o777) == 0o600  # perms wins
        write_text_atomic(existing, "again")  # no perms: the existing file keeps its mode
        assert (existing.stat().st_mode & 0o777) == 0o600
        plain = tmp_path / "plain.txt"
        write_text_atomic(plain, "x")  # no perms, new file: the umask's default, as before
        assert (plain.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old_umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "secret.json", "state.json"]


def test_a_failed_atomic_write_names_the_os_reason_for_callers_to_reword(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from firmware.atomic import storage_reason

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError) as info:
        with atomic_write(tmp_path / "x.json", perms=0o600) as out:
            out.write("{}")
    assert storage_reason(info.value) == "No space left on device"
    assert list(tmp_path.iterdir()) == []
