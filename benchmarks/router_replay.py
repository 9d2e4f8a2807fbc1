"""Benchmark: routing a whole log at once (``Policy.classify_table``) against a per-query loop of ``classify``.

Targets from the router issues: classify_table at least 20x the loop on 1,000,000 synthetic turns, with
the synthetic (short) queries and with long multi-sentence ones (~90 bytes, as real customers write),
and at least 10x while another job keeps every core busy. Both run in this process on the same turns;
medians over the repeats; peak RSS of the process.

    python benchmarks/router_replay.py [--turns 1000000] [--repeats 3] [--log FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hibachi_lab import synth, traffic
from hibachi_lab.router import Policy

SEED_POLICY = Path(__file__).resolve().parent.parent / "configs" / "router" / "seed.yaml"
BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def long_queries(table: pa.Table, seed: int = 7) -> pa.Table:
    """The same turns with multi-sentence queries of 70-110 bytes (~90 on average): two or three of the
    log's short messages run together, as a customer writes a question, a detail and a thanks at once."""
    rng = np.random.default_rng(seed)
    pool = [q.strip() for q in table["query"].to_pylist() if 8 <= len(q.encode()) <= 60]
    queries = []
    for _ in range(table.num_rows):
        text = pool[rng.integers(len(pool))]
        while len(text.encode()) < 70:
            text = f"{text.rstrip('.!?')}. {pool[rng.integers(len(pool))]}"
        queries.append(text if len(text.encode()) <= 110 else text.encode()[:110].decode(errors="ignore"))
    return table.set_column(table.schema.get_field_index("query"), "query", pa.array(queries, pa.string()))


@contextlib.contextmanager
def cores_busy(seconds: float = 3600) -> Iterator[int]:
    """Another job on every core: one Python process spinning per core, for the block's duration."""
    workers = os.cpu_count() or 1
    burners = [subprocess.Popen([sys.executable, "-c", BURN.format(seconds=seconds)]) for _ in range(workers)]
    try:
        time.sleep(0.5)  # let them start spinning
        yield workers
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()


def compare(policy: Policy, table: pa.Table, repeats: int) -> tuple[float, float]:
    """Median seconds of classify_table and of the per-query loop on the same turns."""
    # The loop gets plain Python inputs prepared outside the timing, as a per-query service would.
    queries = table["query"].to_pylist()
    depths = [range(depth) for depth in pc.list_value_length(table["history"]).fill_null(0).to_pylist()]
    sentiments = table["customer_sentiment"].to_pylist()

    def loop() -> None:
        for query, history, sentiment in zip(queries, depths, sentiments):
            policy.classify(query, history, sentiment)

    return timed(lambda: policy.classify_table(table), repeats), timed(loop, repeats)


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
    short = traffic.arrow_table(traffic.load(log))
    long = long_queries(short)
    policy = Policy.from_yaml(SEED_POLICY)
    # The keyword scan is compiled on first use (and cached on disk): a one-time cost, kept out of the timing.
    policy.classify_table(short.slice(0, 100))
    policy.classify_table(short)

    results = {}
    results["short queries"] = compare(policy, short, args.repeats)
    results["long queries"] = compare(policy, long, args.repeats)
    with cores_busy() as workers:
        results[f"short, {workers} cores busy"] = compare(policy, short, args.repeats)

    turns = short.num_rows
    mean_bytes = {name: pc.mean(pc.binary_length(t["query"])).as_py() for name, t in (("short", short), ("long", long))}
    print(f"{turns:,} turns, medians over {args.repeats} runs; query bytes: short {mean_bytes['short']:.0f}, "
          f"long {mean_bytes['long']:.0f} on average; {os.cpu_count()} cores")
    print(f"{'workload':<24}{'classify_table':>16}{'classify loop':>16}{'ratio':>9}  target")
    for name, (table_seconds, loop_seconds) in results.items():
        target = "10x" if "busy" in name else "20x"
        print(f"{name:<24}{table_seconds:>14.3f} s{loop_seconds:>14.2f} s{loop_seconds / table_seconds:>8.1f}x  "
              f"at least {target}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
