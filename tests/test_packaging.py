"""Packaging: the README's commands are what CI runs, and our ranges admit unsloth's pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NETWORK_ERRORS = ("dns error", "Failed to fetch", "error sending request", "Connection refused", "timed out", "offline")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Setup", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)\n(.+?)\n```", setup, flags=re.DOTALL)


def test_readme_opens_with_two_commands_and_ci_runs_the_second():
    commands = readme_commands()
    assert len(commands) == 2
    install_and_demo, install_and_test = commands
    assert "hibachi-lab demo" in install_and_demo and "pytest" in install_and_test
    for command in commands:
        assert "\n" not in command.strip()
        assert "pip install -q torch==2.13.0" in command  # torch first: the CPU wheel on disk
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install_and_test.strip() in ci.splitlines()


def _compile(tmp_path: Path, *extra: str) -> dict[str, str]:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    result = subprocess.run(
        [uv, "pip", "compile", str(ROOT / "pyproject.toml"), *extra, "--python-version", "3.11",
         "--python-platform", "x86_64-manylinux_2_28", "--no-header", "--quiet",
         "--cache-dir", str(tmp_path / "uv-cache")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if result.returncode != 0 and any(marker in result.stderr for marker in NETWORK_ERRORS):
        pytest.skip(f"the package index is unreachable, so the resolution cannot be checked: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", result.stdout, flags=re.MULTILINE))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


@pytest.mark.slow
def test_unsloth_extra_resolves_for_linux_x86_64_without_installing(tmp_path):
    with_unsloth = _compile(tmp_path, "--extra", "unsloth")
    assert "unsloth" in with_unsloth
    # unsloth 2026.10 pins these; a resolution that succeeded had to respect them
    assert _version(with_unsloth["transformers"]) <= (5, 17, 0)
    assert _version(with_unsloth["trl"]) <= (1, 15, 0)
    assert _version(with_unsloth["datasets"]) < (5, 0, 0)
    assert _version(with_unsloth["torch"]) < (2, 15, 0)

    base = _compile(tmp_path)
    # ...while without the extra nothing caps us below those releases
    assert _version(base["transformers"]) >= _version(with_unsloth["transformers"])
    assert _version(base["trl"]) >= _version(with_unsloth["trl"])
