"""Benchmark: the similarity engine against a naive per-pair ``model.encode([a, b])`` loop.

Target from the similarity issue: at least 5x the naive loop cold (empty cache) and 50x with a
warm cache, on 50,000 texts with the duplication of real traffic. The workload is the one the
consensus replay runs: the logged answers of synthetic turns with two or more answers (routed
model plus shadow ensemble, where FAQ answers repeat), every pair within a turn compared. The
naive loop calls ``model.encode([a, b])`` per pair; it is too slow to run on all pairs, so it is
timed on a subsample and extrapolated, and printed as such. Medians over the repeats.

    python benchmarks/similarity.py [--texts 50000] [--naive-pairs 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import tempfile
import time

from hibachi_lab import synth
from hibachi_lab.similarity import DEFAULT_MODEL, SimilarityEngine, load_model, resolve_model


def consensus_workload(count: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Answers of synthetic turns with 2+ answers (until ``count`` texts) and the pairs within each turn."""
    texts: list[str] = []
    pairs: list[tuple[str, str]] = []
    for turn in synth.generate(count, seed=7):
        answers = [response.content for response in turn.responses if response.content]
        if len(answers) < 2:
            continue
        texts.extend(answers)
        pairs.extend(itertools.combinations(answers, 2))
        if len(texts) >= count:
            break
    return texts, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--naive-pairs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    texts, pairs = consensus_workload(args.texts)
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    print(f"{len(texts):,} texts ({len(set(texts)):,} distinct, {1 - len(set(texts)) / len(texts):.0%} repeats), "
          f"{len(pairs):,} pairs compared")

    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            engine = SimilarityEngine(cache_dir=cache)
            start = time.perf_counter()
            engine.cosine(first, second)
            cold.append(time.perf_counter() - start)
            again = SimilarityEngine(cache_dir=cache)
            start = time.perf_counter()
            again.cosine(first, second)
            warm.append(time.perf_counter() - start)
            assert again.newly_embedded == 0

    model = load_model(DEFAULT_MODEL)
    # Every k-th pair, so the sample spans the whole log rather than its first conversations.
    sample = pairs[:: max(1, len(pairs) // args.naive_pairs)][: args.naive_pairs]
    naive = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for a, b in sample:
            vectors = model.encode([a, b], normalize_embeddings=True, show_progress_bar=False)
            float(vectors[0] @ vectors[1])
        naive.append((time.perf_counter() - start) / len(sample) * len(pairs))

    cold_s, warm_s, naive_s = statistics.median(cold), statistics.median(warm), statistics.median(naive)
    rate = len(texts)
    print(f"model: {resolve_model(DEFAULT_MODEL)}")
    print(f"engine, cold cache:  {rate / cold_s:10,.0f} texts/s  ({cold_s:.1f} s, median of {args.repeats})")
    print(f"engine, warm cache:  {rate / warm_s:10,.0f} texts/s  ({warm_s:.2f} s)")
    print(f"naive encode([a, b]) loop: {rate / naive_s:10,.0f} texts/s  "
          f"(extrapolated from {len(sample)} pairs to {len(pairs):,}: {naive_s:.0f} s)")
    print(f"ratio cold: {naive_s / cold_s:.1f}x (target 5x); ratio warm: {naive_s / warm_s:.1f}x (target 50x)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
