"""`core.rollout_rows` before and after the head mean of a block in one torch pass (issue 21).

    flock /work/bench.lock nice -n 5 python bench/bench_rollout_rows.py            # 1,024, 4,096
    flock /work/bench.lock nice -n 5 python bench/bench_rollout_rows.py --tokens 1024 --skip-old
    flock /work/bench.lock nice -n 5 python bench/bench_rollout_rows.py --skip-old --neuron

Model: `bench/bench_long_context.py`'s Llama shape (random weights, hidden 896, 14 query heads
in 2 key-value groups, 4 layers, float32). Each measurement is a fresh process: the model and
the text's capturing `run_attention` first, then the timed calls, with the peak RSS growth
(VmHWM reset before them). "old" is `core/long_rollout.py` as it is on `--base` (default
`main`), loaded from git beside the tree's `core` (it reads `CapturedStack.tile`, unchanged);
"new" is the tree's. The parent compares the two implementations' rows (max |difference|).
With `--neuron`, one more process times `core.neuron_view` (its own capturing pass) against
`core.neuron_view_of` (the result's capture reused) on the last head's last query.
"""

from __future__ import annotations

import argparse
import importlib.util
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


def module_at(base: str, path: str, name: str):
    """The module of `path` (e.g. "core/long_rollout.py") as it is on git revision `base`,
    imported as `name` beside this tree's `core`."""
    source = subprocess.run(
        ["git", "show", f"{base}:{path}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(source)
    try:
        spec = importlib.util.spec_from_file_location(name, handle.name)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.unlink(handle.name)
    return module


def implementation(which: str, base: str):
    """`rollout_rows` of the tree ("new") or of `base`'s `core/long_rollout.py` ("old")."""
    if which == "new":
        from core.long_rollout import rollout_rows

        return rollout_rows
    return module_at(base, "core/long_rollout.py", "old_long_rollout").rollout_rows


def child(path: str, which: str, tokens: int, base: str, eight: bool) -> dict:
    import core

    model = core.load_model(path)
    text = text_of(model.tokenizer, tokens)
    result = core.run_attention(model, text, budget=0)
    n = len(result.tokens)
    figures: dict = {"impl": which, "tokens": n}
    before = reset_peak()
    if which == "neuron":
        return neuron_figures(model, text, result, figures, before)
    rollout_rows = implementation(which, base)
    # First calls pay for torch's and the allocator's warm-up: one block of layer 0 first.
    rollout_rows(result, [0], layer=0)
    before = reset_peak()
    # The old code's 4,096-token rows take minutes on a busy machine: one run of one row there.
    repeats = 3 if which == "new" or tokens <= 1024 else 1
    one = None
    for label, rows in (("one_row", [n - 1]), ("eight_rows", list(range(n - 8, n)))):
        if label == "eight_rows" and not eight:
            continue
        walls, cpus = [], []
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            got = rollout_rows(result, rows)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
            one = got if one is None else one
        best = min(range(repeats), key=walls.__getitem__)
        # Wall seconds: the fastest run (the least disturbed by other work) and the median;
        # CPU seconds (both threads) of the fastest run.
        figures[f"{label}_s"] = round(walls[best], 2)
        figures[f"{label}_median_s"] = round(sorted(walls)[repeats // 2], 2)
        figures[f"{label}_cpu_s"] = round(cpus[best], 2)
    assert one is not None
    figures["rss_growth_mb"] = round(rss_mb(os.getpid())["VmHWM"] - before, 1)
    figures["row_sum_minus_1"] = float(one.sum() - 1.0)
    figures["row"] = one[0].tolist()
    return figures


def neuron_figures(model, text: str, result, figures: dict, before: float) -> dict:
    """The last layer's last head at the last query: `neuron_view` (its own capturing pass)
    against `neuron_view_of` (the result's capture), and how far apart their weights are."""
    import numpy as np

    import core

    case = (result.num_layers - 1, result.num_heads - 1, len(result.tokens) - 1)
    start = time.perf_counter()
    reused = core.neuron_view_of(result, *case)
    figures["neuron_view_of_s"] = round(time.perf_counter() - start, 3)
    figures["neuron_view_of_rss_growth_mb"] = round(rss_mb(os.getpid())["VmHWM"] - before, 1)
    start = time.perf_counter()
    own = core.neuron_view(model, text, *case)
    figures["neuron_view_s"] = round(time.perf_counter() - start, 2)
    figures["max_weight_gap"] = float(np.max(np.abs(own.weights - reused.weights)))
    figures["rss_growth_mb"] = round(rss_mb(os.getpid())["VmHWM"] - before, 1)
    figures["row"] = []
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, nargs="*", default=[1024, 4096])
    parser.add_argument("--base", default="main")
    parser.add_argument("--skip-old", action="store_true")
    parser.add_argument("--neuron", action="store_true", help="also the neuron view, reused")
    parser.add_argument("--child", nargs=5, metavar=("PATH", "IMPL", "TOKENS", "BASE", "EIGHT"))
    args = parser.parse_args()
    if args.child:
        path, which, tokens, base, eight = args.child
        print(json.dumps(child(path, which, int(tokens), base, eight == "1")))
        return
    print("load average before:", load_average(), flush=True)
    with tempfile.TemporaryDirectory() as directory:
        path = build_checkpoint(Path(directory))
        for tokens in args.tokens:
            rows = {}
            kinds = ("new",) if args.skip_old else ("old", "new")
            for which in (*kinds, "neuron") if args.neuron else kinds:
                eight = "1" if which != "old" or tokens <= 1024 else "0"
                command = [sys.executable, __file__, "--child", str(path), which, str(tokens)]
                run = subprocess.run(
                    [*command, args.base, eight], capture_output=True, text=True, check=False
                )
                lines = run.stdout.strip().splitlines()
                if run.returncode != 0 or not lines:
                    print(which, tokens, "failed:", run.stderr.strip()[-600:], flush=True)
                    continue
                figures = json.loads(lines[-1])
                rows[which] = figures.pop("row")
                print(json.dumps(figures), "| load", load_average(), flush=True)
            if "old" in rows and "new" in rows:
                worst = max(abs(a - b) for a, b in zip(rows["old"], rows["new"], strict=True))
                print(f"{tokens} tokens: max |old − new| over the row = {worst:.3g}", flush=True)
    print("load average after:", load_average())


if __name__ == "__main__":
    main()
