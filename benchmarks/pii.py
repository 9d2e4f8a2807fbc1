"""Benchmark: ``hibachi-lab scrub`` against a plain per-text loop of Presidio's analyze + anonymize.

Target from the PII issue: at least 4x the plain loop, in **distinct** texts per second, on the sample
traffic (every text of every turn: query, history, answers, final answer; a history copy of an earlier
query is no new work, so both sides are credited with distinct texts only). The plain loop is Presidio's
default ``AnalyzerEngine`` (all predefined recognizers; on the same installed spaCy pipeline,
because the default en_core_web_lg is not installed here) and ``AnonymizerEngine`` on one text at a
time. It is too slow for all texts at every repeat, so it runs on a random sample of them and its
rate is printed as measured on that sample. Analyzers are built before timing. Medians over repeats.

    python benchmarks/pii.py [--log data/sample_traffic.jsonl] [--loop-texts 1500] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from pathlib import Path

from hibachi_lab import pii, traffic

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_traffic.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", type=Path, default=SAMPLE)
    parser.add_argument("--loop-texts", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="processes for scrub (the 2 cores of the dev machine)")
    args = parser.parse_args()

    table = traffic.load(args.log)
    turns = list(traffic.iter_objects(table))
    texts = [slot.text for turn in turns for slot in pii.turn_slots(turn) if slot.text]
    distinct = list(dict.fromkeys(texts))
    print(f"{len(turns):,} turns, {len(texts):,} texts, {len(distinct):,} distinct (the unit of work below)")
    config = pii.PiiConfig.from_yaml(Path(__file__).resolve().parent.parent / "configs" / "pii.yaml")

    scrub_times = []
    for _ in range(args.repeats):
        scrubber = pii.Scrubber(config, workers=args.workers)
        fresh = list(traffic.iter_objects(table))
        start = time.perf_counter()
        scrubber.scrub_turns(fresh)
        scrub_times.append(time.perf_counter() - start)

    from presidio_anonymizer import AnonymizerEngine

    analyzer, anonymizer = pii.build_default_analyzer(config), AnonymizerEngine()
    sample = random.Random(0).sample(distinct, min(args.loop_texts, len(distinct)))
    loop_rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for text in sample:
            anonymizer.anonymize(text=text, analyzer_results=analyzer.analyze(text=text, language="en"))
        loop_rates.append(len(sample) / (time.perf_counter() - start))

    scrub_rate = len(distinct) / statistics.median(scrub_times)
    loop_rate = statistics.median(loop_rates)
    print(f"scrub (batched, per-conversation pseudonyms and propagation): {scrub_rate:8,.0f} distinct texts/s "
          f"({statistics.median(scrub_times):.1f} s for all {len(distinct):,}, median of {args.repeats})")
    print(f"plain loop of Presidio default analyze + anonymize:           {loop_rate:8,.0f} distinct texts/s "
          f"(measured on a random sample of {len(sample):,} of them)")
    print(f"ratio: {scrub_rate / loop_rate:.1f}x (target 4x)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
