"""Benchmark: loading a large logged-traffic file.

Loads an N-turn synthetic log (default 1,000,000) with ``hibachi_lab.traffic.read_logs``
(validated, streamed into a memory-mapped Arrow file) and, as the baseline named in the
foundation issue, the naive way: ``json.loads`` of every line into a list of dicts. Each
load runs in a fresh subprocess so its peak RSS is its own. Prints medians over the repeats.

    python benchmarks/load_traffic.py [--turns 1000000] [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RSS_BUDGET_MB = 2048

LOADER = """
import json, resource, sys, tempfile, time
from hibachi_lab import traffic
start = time.perf_counter()
result = traffic.read_logs(sys.argv[1], cache_dir=tempfile.mkdtemp())
rows = result.dataset.num_rows
seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": seconds, "quarantined": result.report.rows_quarantined,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

NAIVE = """
import json, resource, sys, time
start = time.perf_counter()
with open(sys.argv[1], encoding="utf-8") as stream:
    rows = [json.loads(line) for line in stream]
seconds = time.perf_counter() - start
print(json.dumps({"rows": len(rows), "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, path: Path) -> dict:
    output = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def medians(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in ("rows", "seconds", "peak_rss_mb")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from hibachi_lab import synth, traffic

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hibachi-bench-"))
    log = workdir / f"traffic-{args.turns}.jsonl"
    if not log.exists():
        start = time.perf_counter()
        turns = itertools.islice(synth.generate(args.turns, seed=1), args.turns)
        traffic.write_turns(turns, log)
        print(f"generated {args.turns:,} turns ({log.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - start:.0f} s")

    ours = medians([run(LOADER, log) for _ in range(args.repeats)])
    naive = medians([run(NAIVE, log) for _ in range(args.repeats)])

    print(f"\nmedians over {args.repeats} runs, {ours['rows']:,.0f} turns")
    print(f"{'':28}{'rows/s':>12}{'seconds':>10}{'peak RSS MB':>14}")
    for name, figures in (("hibachi_lab.traffic.load", ours), ("naive list of dicts", naive)):
        print(f"{name:28}{figures['rows'] / figures['seconds']:>12,.0f}{figures['seconds']:>10.1f}{figures['peak_rss_mb']:>14,.0f}")
    print(f"\npeak RSS ratio, naive / ours: {naive['peak_rss_mb'] / ours['peak_rss_mb']:.1f}x")
    print(f"peak RSS vs the 2 GB budget: {ours['peak_rss_mb'] / RSS_BUDGET_MB:.2f} ({'within' if ours['peak_rss_mb'] < RSS_BUDGET_MB else 'OVER'} budget)")
    print(f"speed ratio, ours / naive (ours also validates every field): {naive['seconds'] / ours['seconds']:.2f}x")


if __name__ == "__main__":
    main()
