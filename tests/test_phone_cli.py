"""`parallax pair`: the QR code and its text fallback, rotation, forgetting the phone, the link state."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from firmware.cli.main import main
from firmware.phone.link import write_status
from firmware.phone.secret import BondedPhone, PairingStore, parse_qr_payload


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "parallax.toml"
    path.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n')
    return path


def code_from(out: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("pairing code"))


def test_show_qr_prints_a_scannable_block_and_the_text_code(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "pair", "--show-qr"]) == 0
    out = capsys.readouterr().out
    assert "█" in out and "▀" in out  # the QR code in half blocks
    secret, _ = parse_qr_payload(code_from(out))
    assert secret == PairingStore(tmp_path / "state").secret()
    assert stat.S_IMODE((tmp_path / "state" / "phone-secret.json").stat().st_mode) == 0o600
    # the same secret every time until it is rotated
    assert main(["--config", str(config), "pair", "--text"]) == 0
    again = capsys.readouterr().out
    assert "█" not in again and code_from(again) == code_from(out)


def test_rotate_makes_a_new_key(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--config", str(config), "pair", "--text"])
    first, _ = parse_qr_payload(code_from(capsys.readouterr().out))
    assert main(["--config", str(config), "pair", "--rotate", "--text"]) == 0
    out = capsys.readouterr().out
    second, _ = parse_qr_payload(code_from(out))
    assert second.key_id == first.key_id + 1 and second.secret != first.secret and "scan again" in out


def test_forget_and_status(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    PairingStore(state).remember(BondedPhone("AA:BB:CC:DD:EE:01"))
    assert main(["--config", str(config), "pair", "--status"]) == 1
    assert "no link state yet" in capsys.readouterr().out
    write_status(state / "phone-status.json", {"connected": True, "pairing": False, "bonded_phone": "AA:BB:CC:DD:EE:01",
                                               "last_error": None, "queued": 0, "counters": {"sent": 3}})  # fmt: skip
    assert main(["--config", str(config), "pair", "--status"]) == 0
    out = capsys.readouterr().out
    assert "connected      True" in out and '"sent": 3' in out
    assert main(["--config", str(config), "pair", "--forget"]) == 0
    assert "forgot AA:BB:CC:DD:EE:01" in capsys.readouterr().out
    assert PairingStore(state).bonded() is None


def test_a_damaged_secret_is_one_clear_line(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "phone-secret.json").write_text("{nope")
    assert main(["--config", str(config), "pair"]) == 3  # README "Exit status": state unreadable
    err = capsys.readouterr().err
    assert err.startswith("parallax: error: cannot read") and len(err.strip().splitlines()) == 1
