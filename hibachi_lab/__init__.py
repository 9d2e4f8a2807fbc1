"""hibachi-lab: an offline workbench for My Hibachi's multi-LLM customer assistant."""

__version__ = "0.1.0"
