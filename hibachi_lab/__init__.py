"""hibachi-lab: an offline workbench for My Hibachi's multi-LLM customer assistant."""

__version__ = "0.1.0"

from pathlib import Path

# The checkout the package runs from (installed editable, as the README does): configs/ and data/ live there.
REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS = REPO_ROOT / "configs"
BUNDLED_PROBES = REPO_ROOT / "data" / "similarity_probes.jsonl"
# Hand-labelled (teacher, student) pairs the gate's verdicts are calibrated on: gate-calibrate.
GATE_PROBES = REPO_ROOT / "data" / "gate_probes.jsonl"
