from pathlib import Path

import pytest

from firmware.config import Config, load_config
from firmware.errors import ConfigError


def test_no_file_gives_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("firmware.config.DEVICE_CONFIG_PATH", Path("/nonexistent/parallax.toml"))
    assert load_config() == Config()


def test_overrides_are_parsed_into_frozen_sections(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[speech]\njoin_gap_s = 0.8\n[speech.recognizer]\nmodel = "whisper-base"\nnum_threads = 2\n')
    config = load_config(path)
    assert config.speech.join_gap_s == 0.8
    assert config.speech.recognizer.model == "whisper-base"
    assert config.speech.recognizer.num_threads == 2
    assert config.speech.vad == Config().speech.vad  # untouched sections keep defaults
    with pytest.raises(AttributeError):
        config.speech.join_gap_s = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[speech]\nno_such_key = 1\n", "unknown key(s) no_such_key"),
        ("[speech.recognizer]\nnum_threads = 'two'\n", "expected int"),
        ("[speech]\njoin_gap_s = true\n", "expected a number"),
        ("speech = 3\n", "expected a table"),
        ("[speech\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_vad_level_parties_are_checked_speakers(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[speech.vad_level]\nparties = ["rep", "buyer"]\nmax_gain_db = 10\n')
    config = load_config(path)
    assert config.speech.vad_level.parties == ("rep", "buyer")
    assert config.speech.vad_level.max_gain_db == 10.0
    path.write_text('[speech.vad_level]\nparties = ["caller"]\n')
    with pytest.raises(ConfigError, match="'caller' is not one of"):
        load_config(path)
