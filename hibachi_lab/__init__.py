"""hibachi-lab: an offline workbench for My Hibachi's multi-LLM customer assistant."""

__version__ = "0.1.0"

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# The checkout the package runs from, when it runs from one (editable install, tests).
REPO_ROOT = _PACKAGE.parent


def _bundled(name: str) -> Path:
    """configs/ or data/: inside the package when installed from a wheel, else at the top of the checkout."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else REPO_ROOT / name


CONFIGS = _bundled("configs")
DATA = _bundled("data")
BUNDLED_PROBES = DATA / "similarity_probes.jsonl"
# Hand-labelled (teacher, student) pairs the gate's verdicts are calibrated on: gate-calibrate.
GATE_PROBES = DATA / "gate_probes.jsonl"
