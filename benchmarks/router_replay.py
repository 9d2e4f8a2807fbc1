"""Benchmark: routing a whole log at once (``Policy.classify_table``) against a per-query loop of ``classify``.

Target from the router issue: classify_table at least 20x the loop on 1,000,000 synthetic turns.
Both run in this process on the same turns; medians over the repeats; peak RSS of the process.

    python benchmarks/router_replay.py [--turns 1000000] [--repeats 3] [--log FILE]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc

from hibachi_lab import synth, traffic
from hibachi_lab.router import Policy

SEED_POLICY = Path(__file__).resolve().parent.parent / "configs" / "router" / "seed.yaml"


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log", type=Path, help="an existing log to use instead of generating one")
    args = parser.parse_args()

    log = args.log
    if log is None:
        log = Path(tempfile.mkdtemp(prefix="hibachi-bench-")) / "traffic.jsonl"
        traffic.write_turns(itertools.islice(synth.generate(args.turns, seed=1), args.turns), log)
    table = traffic.arrow_table(traffic.load(log))
    policy = Policy.from_yaml(SEED_POLICY)

    # The loop gets plain Python inputs prepared outside the timing, as a per-query service would.
    queries = table["query"].to_pylist()
    depths = [range(depth) for depth in pc.list_value_length(table["history"]).to_pylist()]
    sentiments = table["customer_sentiment"].to_pylist()

    def loop() -> None:
        for query, history, sentiment in zip(queries, depths, sentiments):
            policy.classify(query, history, sentiment)

    # The keyword scan is compiled on first use (and cached on disk): a one-time cost, kept out of the timing.
    policy.classify_table(table.slice(0, 100))
    table_seconds = timed(lambda: policy.classify_table(table), args.repeats)
    loop_seconds = timed(loop, args.repeats)
    turns = table.num_rows
    print(f"{turns:,} turns, medians over {args.repeats} runs")
    print(f"classify_table   {turns / table_seconds:>14,.0f} turns/s  ({table_seconds:.2f} s)")
    print(f"classify loop    {turns / loop_seconds:>14,.0f} turns/s  ({loop_seconds:.2f} s)")
    print(f"ratio table/loop {loop_seconds / table_seconds:>14.1f}x  (target: at least 20x)")
    print(f"peak RSS         {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:>14,.0f} MB")


if __name__ == "__main__":
    main()
