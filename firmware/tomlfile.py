"""Reading the box's TOML files (configuration, playbook, pin map) with one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from firmware.errors import ParallaxError


def read_toml(path: Path, what: str, error: type[ParallaxError]) -> dict[str, Any]:
    """Parse ``path``; a missing or malformed file raises ``error`` naming ``what`` it is."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory") from None
    except PermissionError:
        raise error(f"{what} {path} is not readable (permission denied)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None
