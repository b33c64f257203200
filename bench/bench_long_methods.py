"""What each view and method needs at length: time and peak memory on a Llama-shaped model.

    flock /work/bench.lock python bench/bench_long_methods.py                 # every row
    flock /work/bench.lock python bench/bench_long_methods.py --only rollout_rows
    flock /work/bench.lock python bench/bench_long_methods.py --tiny     # the tests' tiny Llama

Uses `bench/bench_long_context.py`'s checkpoint (random Llama weights, hidden 896, 14 query
heads in 2 key-value groups, 4 layers, float32). Each measurement runs in a fresh process so
its peak RSS growth (VmHWM reset before the call) is its own: the model and the text's
`run_attention` result are loaded first, then one call is timed. Rows:

* `rollout_rows`: `core.rollout_rows` of 1 and 8 rows through every layer at 4,096 tokens,
  beside one head's pooled overview in the same process (a yardstick of the machine's load);
* `neuron`: `core.neuron_view` of the last query in the last layer's last head at 4,096;
  `lens`: `core.logit_lens` at 4,096;
* each registry method (`core.run_method`, the memory check lifted) at the lengths given, to
  set the memory formula its `Cost` declares; the row prints the formula's bytes beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.bench_browser import load_average, rss_mb  # noqa: E402
from bench.bench_long_context import build_checkpoint, reset_peak, text_of  # noqa: E402

TINY_CASES = {
    "rollout_rows": [4096],
    "neuron": [4096],
    "lens": [4096],
    **{
        name: [1024, 4096]
        for name in ("attention_norm", "alti", "grad_attention", "value_zeroing", "flow")
    },
}
"""`--tiny`: the tests' Llama (2 layers × 4 heads, hidden 32) with 8,448 positions; methods with
the default memory budget, so a refusal is reported as the page would show it."""
CASES = {
    "rollout_rows": [4096],
    "neuron": [4096],
    "lens": [4096],
    "attention_norm": [512, 1024],
    "alti": [512, 1024],
    "grad_attention": [512, 1024],
    "value_zeroing": [256, 512],
    "rollout": [512, 1024],
    "flow": [256, 512],
}


def child(path: str, what: str, tokens: int, lifted: bool = True) -> dict:
    import core
    from core.methods import MethodRequest

    model = core.load_model(path)
    text = text_of(model.tokenizer, tokens)
    result = core.run_attention(model, text, budget=2**40)
    n = len(result.tokens)
    figures: dict = {"what": what, "tokens": n}
    before = reset_peak()
    start = time.perf_counter()
    if what == "rollout_rows":
        one = core.rollout_rows(result, [n - 1])
        figures["one_row_s"] = time.perf_counter() - start
        start = time.perf_counter()
        core.rollout_rows(result, list(range(n - 8, n)))
        figures["eight_rows_s"] = time.perf_counter() - start
        figures["row_sum"] = float(one.sum())
        # The same machine's yardstick in the same process: one head's 256² pooled overview
        # (issue 21's target ≤ 1 s), which reads n²/1 weights where a row's rollout reads
        # about (layers - 1) · heads · n²/2.
        start = time.perf_counter()
        result.pooled(result.num_layers - 1, 0)
        figures["pooled_one_head_s"] = time.perf_counter() - start
    elif what == "neuron":
        layer, head = result.num_layers - 1, result.num_heads - 1
        view = core.neuron_view(model, text, layer, head, n - 1)
        figures["seconds"] = time.perf_counter() - start
        figures["keys"] = len(view.weights)
    elif what == "lens":
        table = core.logit_lens(model, text, n - 1)
        figures["seconds"] = time.perf_counter() - start
        figures["rows"] = len(table)
    else:
        entry = core.get_method(what)
        layers = (0,) if any(p.name == "layers" for p in entry.parameters) else None
        rows = (n - 1,) if any(p.name == "rows" for p in entry.parameters) else None
        budget = 2**40 if lifted else core.costs.METHOD_BUDGET_BYTES
        request = MethodRequest(result, model, layers=layers, rows=rows, memory_budget=budget)
        try:
            core.run_method(what, request)
        except core.MethodTooLongError as error:
            figures["refused"] = str(error)
        figures["seconds"] = time.perf_counter() - start
        pieces = result.pieces()
        figures["declared_mb"] = (
            entry.cost.nbytes(
                n,
                pieces.num_layers,
                pieces.num_heads,
                rows=None if rows is None else len(rows),
                layers=None if layers is None else len(layers),
            )
            / 2**20
        )
        figures["layers"] = "one" if layers else "all"
    figures["rss_growth_mb"] = rss_mb(os.getpid())["VmHWM"] - before
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=list(CASES))
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny Llama instead")
    parser.add_argument("--child", nargs=4, metavar=("PATH", "WHAT", "TOKENS", "LIFTED"))
    args = parser.parse_args()
    if args.child:
        path, what, tokens, lifted = args.child
        print(json.dumps(child(path, what, int(tokens), lifted == "1")))
        return
    print("load average before:", load_average())
    cases = TINY_CASES if args.tiny else CASES
    with tempfile.TemporaryDirectory() as directory:
        if args.tiny:
            from bench.bench_long_context_heads import build_tiny_llama

            path = build_tiny_llama(Path(directory), 8448)
        else:
            path = build_checkpoint(Path(directory))
        for what in args.only:
            for tokens in cases.get(what, ()):
                lifted = "0" if args.tiny else "1"
                run = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), what, str(tokens), lifted],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                lines = run.stdout.strip().splitlines()
                if run.returncode == 0 and lines:
                    print(lines[-1], flush=True)
                else:
                    print(what, tokens, "failed:", run.stderr.strip()[-400:], flush=True)
    print("load average after:", load_average())


if __name__ == "__main__":
    main()
