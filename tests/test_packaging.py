"""What pyproject promises about where each device dependency is installed.

The markers are the contract: lgpio (the Pi's PWM-capable GPIO backend) on the Pi's architectures
only, and NumPy held below 2 exactly where tflite-runtime (built against NumPy 1.x) is installed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(r) for r in data["project"]["dependencies"]]


def _installed(env: dict[str, str]) -> dict[str, list[Requirement]]:
    chosen: dict[str, list[Requirement]] = {}
    for req in _requirements():
        if req.marker is None or req.marker.evaluate(env):
            chosen.setdefault(req.name, []).append(req)
    return chosen


def _env(python: str, machine: str) -> dict[str, str]:
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": machine, "os_name": "posix", "implementation_name": "cpython"}


@pytest.mark.parametrize("machine", ["aarch64", "armv7l"])
def test_lgpio_is_installed_on_the_pi(machine: str) -> None:
    assert "lgpio" in _installed(_env("3.11", machine))


@pytest.mark.parametrize("machine", ["x86_64"])
def test_lgpio_is_not_installed_off_the_pi(machine: str) -> None:
    assert "lgpio" not in _installed(_env("3.11", machine))


@pytest.mark.parametrize("python", ["3.11", "3.12"])
@pytest.mark.parametrize("machine", ["aarch64", "x86_64"])
def test_numpy_below_2_exactly_where_tflite_runtime_is(python: str, machine: str) -> None:
    chosen = _installed(_env(python, machine))
    (numpy,) = chosen["numpy"]  # one numpy clause applies on every platform
    held_below_2 = not numpy.specifier.contains("2.0.0")
    assert held_below_2 == ("tflite-runtime" in chosen)
    # and one intent runtime on each
    assert ("tflite-runtime" in chosen) != ("ai-edge-litert" in chosen)


def test_requires_python_matches_the_readme() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    spec = data["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    allowed = SpecifierSet(spec)
    assert "3.11.2" in allowed and "3.12.0" in allowed and "3.13.0" not in allowed
    readme = (ROOT / "README.md").read_text()
    assert "3.13 and later" in readme and "refused by `requires-python`" in readme
