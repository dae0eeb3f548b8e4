"""``import firmware`` and every command's start stay light, and the device never imports the test room.

Heavy engines (numpy, sherpa-onnx, tflite, ALSA, bleak, paho) load where they are first used, so
``parallax --help`` and a subcommand's help answer at once on a Pi. ``firmware.testing`` holds test
rigs, evaluation and demo rendering; only the dev subcommands may reach it, and only lazily.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"

# Top-level modules none of these starts may import, plus the dev-only room.
HEAVY = ("numpy", "sherpa_onnx", "onnxruntime", "kaldi_native_fbank", "tflite_runtime", "ai_edge_litert", "alsaaudio", "bleak", "paho")
TESTING = "firmware.testing"

# Subcommands that are dev tools by design: `parallax demo` renders its call with the test room's
# renderer, `parallax coach simulate` drives the coach from ground truth. Both import it inside the
# handler, never at module load.
DEV_COMMAND_MODULES = {"firmware/cli/demo.py", "firmware/cli/coach.py"}


def _loaded_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter and return the heavy modules it left in sys.modules."""
    probe = (
        f"{code}\n"
        "import sys, json\n"
        f"heavy = {HEAVY!r}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m == {TESTING!r} "
        f"or m.startswith({TESTING + '.'!r}))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _command_paths() -> list[list[str]]:
    """Every command and sub-action of ``parallax``, as argv prefixes, walked from the real parser."""
    from firmware.cli.main import build_parser

    paths: list[list[str]] = [[]]

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    paths.append([*prefix, name])
                    walk(child, [*prefix, name])

    walk(build_parser(), [])
    return paths


def test_import_firmware_is_light() -> None:
    assert _loaded_after("import firmware") == []


def test_python_m_firmware_help_is_light() -> None:
    code = "import runpy, sys\nsys.argv = ['parallax', '--help']\ntry:\n    runpy.run_module('firmware', run_name='__main__')\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == []


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "parallax")
def test_each_command_help_is_light(path: list[str]) -> None:
    # main([...,'--help']) imports every subcommand module (build_parser registers them all) and
    # prints this command's help: none of that may load an engine or the test room.
    code = (
        "from firmware.cli.main import main\n"
        f"try:\n    main({[*path, '--help']!r})\nexcept SystemExit:\n    pass"
    )
    assert _loaded_after(code) == []


def _testing_imports(path: Path) -> list[tuple[int, bool]]:
    """(line, inside a function) for each import of firmware.testing in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found: list[tuple[int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*parent, base] if base else parent)
                names = [base, *(f"{base}.{alias.name}" for alias in child.names)]
            if any(n == TESTING or n.startswith(TESTING + ".") for n in names):
                found.append((child.lineno, inside))
            visit(child, inside)

    visit(tree, False)
    return found


def test_device_rooms_never_import_the_testing_room() -> None:
    offenders = []
    for path in sorted(FIRMWARE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("firmware/testing/"):
            continue
        for line, lazy in _testing_imports(path):
            if not (rel in DEV_COMMAND_MODULES and lazy):
                offenders.append(f"{rel}:{line}")
    assert offenders == [], f"device code imports {TESTING}: {offenders}"


def test_the_scan_sees_imports() -> None:
    # The scan above passes trivially if it cannot see imports; prove it finds the dev commands' own.
    assert _testing_imports(FIRMWARE / "cli" / "demo.py")
    assert all(lazy for _, lazy in _testing_imports(FIRMWARE / "cli" / "coach.py"))
