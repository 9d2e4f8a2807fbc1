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


# --------------------------------------------------------------------------- the wheel carries configs/ and data/


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from .fresh_env import build_wheel, copy_checkout

    folder = tmp_path_factory.mktemp("wheel")
    return build_wheel(copy_checkout(folder / "src"), folder / "dist")


def test_the_wheel_holds_the_configs_and_the_bundled_data(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"hibachi_lab/configs/{path.relative_to(ROOT / 'configs')}" for path in (ROOT / "configs").rglob("*.yaml")}
    expected |= {f"hibachi_lab/data/{path.name}" for path in (ROOT / "data").glob("*.jsonl")}
    expected |= {"hibachi_lab/synth_phrases.yaml", "hibachi_lab/configs/models/qwen3-8b.yaml",
                 "hibachi_lab/data/sample_traffic.jsonl", "hibachi_lab/configs/router/seed.yaml"}
    assert expected <= names, sorted(expected - names)


@pytest.mark.slow
def test_the_installed_wheel_runs_from_another_folder(wheel, tmp_path):
    """pip install dist/hibachi_lab-*.whl in a fresh venv, then the CLI from a folder with no checkout."""
    from hibachi_lab import synth, traffic

    from .fresh_env import OFFLINE_PIP, clean_env, fresh_venv

    python = fresh_venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "-q", *OFFLINE_PIP, str(wheel)], check=True,
                   env=clean_env())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", HIBACHI_LAB_CACHE=str(tmp_path / "c"))
    where = subprocess.run(
        [str(python), "-c", ("import hibachi_lab, hibachi_lab.cli as c; print(hibachi_lab.CONFIGS); "
                             "print(c.SAMPLE_TRAFFIC.exists(), c.DEFAULT_PROMOTION.exists(), "
                             "hibachi_lab.GATE_PROBES.exists())")],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split("\n")
    assert "site-packages/hibachi_lab/configs" in where[0] and where[1] == "True True True"
    cli = tmp_path / "venv" / "bin" / "hibachi-lab"
    planned = subprocess.run([str(cli), "plan", "--model", "qwen3-8b", "--hardware", "colab-t4"], cwd=elsewhere,
                             env=env, capture_output=True, text=True, check=False)
    assert planned.returncode == 0, planned.stderr
    # The demo end to end (on a small log, to keep the test short): configs, router policies, probes and the
    # smoke student all come from the installed package.
    log = elsewhere / "small.jsonl"
    traffic.write_turns(synth.generate(60, seed=3), log)
    demo = subprocess.run([str(cli), "demo", "--logs", str(log)], cwd=elsewhere, env=env, capture_output=True,
                          text=True, check=False, timeout=900)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert (elsewhere / "reports" / "demo" / "summary.json").exists()
