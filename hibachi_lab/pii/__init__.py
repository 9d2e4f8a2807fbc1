"""PII scrubbing with Presidio: nothing from customer logs goes further while it holds a customer's
name, phone, email, street address, card number, gate code, payment handle, birth date or licence.

- :mod:`~hibachi_lab.pii.detectors` and :mod:`~hibachi_lab.pii.names`: the recognizers, each an
  independent source of evidence;
- :mod:`~hibachi_lab.pii.scrub`: the scrubber (consistent per conversation) and ``scrub_file``;
- :mod:`~hibachi_lab.pii.leak`: the leak gate, built from other evidence than the scrubber;
- :mod:`~hibachi_lab.pii.evaluation`: values left, words destroyed, recall and precision, against plain Presidio.
"""

from hibachi_lab.pii.evaluation import (
    as_examples,
    evaluate,
    labelled_examples,
    presidio_evaluator_examples,
    targets_missed,
)
from hibachi_lab.pii.leak import LeakChecker, LeakReport, describe_leaks, leak_gate
from hibachi_lab.pii.scrub import (
    PiiConfig,
    Scrubber,
    ScrubFailed,
    ScrubReport,
    build_analyzer,
    build_default_analyzer,
    conversation_spans,
    scrub_file,
    turn_slots,
)

__all__ = [
    "LeakChecker",
    "LeakReport",
    "PiiConfig",
    "ScrubFailed",
    "ScrubReport",
    "Scrubber",
    "as_examples",
    "build_analyzer",
    "build_default_analyzer",
    "conversation_spans",
    "describe_leaks",
    "evaluate",
   
    "labelled_examples",
    "leak_gate",
    "presidio_evaluator_examples",
    "scrub_file",
    "targets_missed",
    "turn_slots",
]
