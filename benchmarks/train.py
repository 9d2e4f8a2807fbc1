"""Benchmark: padding and throughput of training batches with packing against without.

Target from the training issue: under 5% padding tokens per batch with packing. Both trainers
are built on the same dataset (the sample's, built by ``hibachi-lab demo`` or ``build-dataset``)
with the ``qwen3-tiny`` smoke model on CPU; padding is counted over the batches the trainer's own
data loader yields, tokens/s over ``--steps`` optimizer steps. Medians over the repeats.

    python benchmarks/train.py [--dataset reports/demo/dataset] [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from hibachi_lab import train
from hibachi_lab.recipes import load_hardware, load_recipe

DEFAULT = Path(__file__).resolve().parent.parent / "reports" / "demo" / "dataset"


def padding_share(trainer, batches: int) -> float:
    """Share of positions in the loader's batches that hold padding rather than a token."""
    padded = total = 0
    for index, batch in enumerate(trainer.get_train_dataloader()):
        if index >= batches:
            break
        if "attention_mask" in batch:
            mask = batch["attention_mask"]
        else:  # padding-free packing: one row of concatenated examples, every position a token
            mask = batch["input_ids"] != trainer.processing_class.pad_token_id
        padded += int((mask == 0).sum())
        total += mask.numel()
    return padded / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    recipe, cpu = load_recipe("qwen3-tiny"), load_hardware("laptop-cpu")
    results = {}
    for packing in (False, True):
        shares, rates = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out:
                settings = train.TrainSettings(max_steps=args.steps, packing=packing, save_steps=10_000)
                prepared = train.prepare(recipe, cpu, args.dataset, Path(out), settings)
                shares.append(padding_share(prepared.trainer, args.steps * prepared.plan.gradient_accumulation))
                started = time.perf_counter()
                prepared.trainer.train()
                seconds = time.perf_counter() - started
                rates.append(train._trained_tokens(prepared.trainer) / seconds)
        results[packing] = (statistics.median(shares), statistics.median(rates))
        print(f"packing {'on ' if packing else 'off'}: padding {results[packing][0]:6.1%} of batch positions, "
              f"{results[packing][1]:10,.0f} tokens/s (median of {args.repeats}, {args.steps} steps, qwen3-tiny, CPU)")
    print(f"padding with packing: {results[True][0]:.1%} (target under 5%); "
          f"without: {results[False][0]:.1%}; throughput ratio {results[True][1] / results[False][1]:.2f}x")


if __name__ == "__main__":
    main()
