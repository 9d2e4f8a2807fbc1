"""A fresh Python environment for install tests, built offline in seconds.

A venv without pip whose site-packages sees the test venv's packages through symlinks (every one
but hibachi-lab itself, so the package is importable only once a test installs it), and a copy of
the checkout (tracked and untracked files git does not ignore) to build or clone from. Nothing is
installed into the test venv and nothing is written into the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_PIP = ["--no-deps", "--no-build-isolation", "--no-index"]


def copy_checkout(dest: Path, git_commit: bool = False) -> Path:
    """The working tree as it is (uncommitted changes included); ``git_commit`` makes it a repository to clone."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    if git_commit:
        git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
        subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "snapshot"], cwd=dest, check=True)
    return dest


def fresh_venv(folder: Path) -> Path:
    """A venv (returned: its python) that has every dependency of the test venv but not hibachi-lab."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = folder / "deps"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if entry.name.startswith(("hibachi_lab", "hibachi-lab", "__editable__")) or entry.suffix == ".pth":
            continue
        (deps / entry.name).symlink_to(entry)
    (site / "test-deps.pth").write_text(f"{deps}\n")
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without PYTHONPATH (which would make the checkout importable without any install)."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return env | extra


def build_wheel(source: Path, dist: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", *OFFLINE_PIP, "-w", str(dist), str(source)],
                   check=True, cwd=source)
    return next(dist.glob("hibachi_lab-*.whl"))
