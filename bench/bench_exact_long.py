"""Exactness at 2,048 tokens: rows, tiles, pooled overviews and masks against eager attention.

    python bench/bench_exact_long.py                    # every tiny family, 2,048 tokens
    python bench/bench_exact_long.py --tokens 300 --families llama mistral

Issue 21's target: rows, tiles and overviews equal the model's eager attention ≤ 1e-5
(float32) for every architecture at 300 and 2,048 tokens, masks included. Each family of
`tests/tiny_models.py` is built as the tests build it (random weights, float32, real offline
tokenizer; Mistral's window and Gemma's local layers of 8 tokens, Gemma 2's soft-cap) with
its position table raised to the length asked for, and read two ways:

* `core.run_attention` on the checkpoint loaded by `core.load_model` (the capture: queries,
  keys and normalisers, the fast attention in the forward pass);
* the same checkpoint loaded by transformers with `attn_implementation="eager"`,
  `output_attentions=True`, on the same token ids (the encoder's self-attention for
  encoder-decoder models): the whole `[layers, heads, n, n]` array.

Compared, for every layer and head: 32 rows spread over the text (the first and last
included); three 96 × 96 tiles (the start, the diagonal in the middle, the last rows against
the first keys); the 256 × 256 pooled overview, mean and max, against the same pooling of the
eager array over the cells the model computes; `computed` against the mask written from the
config (causal, and the window of each windowed layer), with the eager weights 0 outside it
and the recomputed ones NaN; and the whole array `result.attentions` (within its budget here).
The worst absolute difference of each family is reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.bench_browser import load_average, machine  # noqa: E402
from bench.bench_long_context import text_of  # noqa: E402

TARGET = 1e-5
ROWS = 32
TILE = 96
POOLED = 256
CAUSAL = {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"}


def build(family: str, directory: Path, positions: int) -> Path:
    """The tests' tiny `family` checkpoint with `positions` positions."""
    import torch

    from tests.tiny_models import build_config, build_tokenizer, model_class

    tokenizer = build_tokenizer(family)
    tokenizer.model_max_length = positions
    config = build_config(family, tokenizer)
    for attribute in ("max_position_embeddings", "n_positions"):
        if getattr(config, attribute, None):
            # RoBERTa's table starts after the padding index: two rows more.
            setattr(config, attribute, positions + (2 if family == "roberta" else 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_class(family)(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def windows(config, layers: int) -> list[int | None]:
    """Each layer's sliding window, read from the config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text, "sliding_window", None)
    types = getattr(text, "layer_types", None)
    if getattr(text, "use_sliding_window", True) is False:
        window = None
    if types:
        return [window if kind == "sliding_attention" else None for kind in types[:layers]]
    return [window] * layers


def expected_mask(causal: bool, window: int | None, n: int):
    import numpy as np

    rows, cols = np.arange(n)[:, None], np.arange(n)[None, :]
    mask = np.ones((n, n), dtype=bool)
    if causal:
        mask &= cols <= rows
        if window:
            mask &= cols > rows - window
    return mask


def pooled_eager(weights, mask, edges, reduce: str):
    """`reduce` of the computed cells of `weights` `[n, n]` in each block of `edges`."""
    import numpy as np

    starts = edges[:-1]
    if reduce == "mean":
        totals = np.add.reduceat(
            np.add.reduceat(np.where(mask, weights, 0.0), starts, 0), starts, 1
        )
        counts = np.add.reduceat(np.add.reduceat(mask.astype(np.int64), starts, 0), starts, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
    values = np.where(mask, weights, -np.inf)
    grid = np.maximum.reduceat(np.maximum.reduceat(values, starts, 0), starts, 1)
    return np.where(np.isneginf(grid), np.nan, grid)


def difference(ours, reference) -> float:
    """Largest |ours − reference| where both are numbers; inf if the NaNs do not match."""
    import numpy as np

    if not np.array_equal(np.isnan(ours), np.isnan(reference)):
        return float("inf")
    both = ~np.isnan(ours)
    return float(np.abs(ours[both] - reference[both]).max()) if both.any() else 0.0


def measure(family: str, tokens: int, scratch: Path) -> dict:
    import numpy as np
    import torch

    import core
    from core.inference import encode
    from tests.tiny_models import SEQ2SEQ_FAMILIES, auto_class

    path = build(family, scratch / family, tokens + 64)
    model = core.load_model(str(path))
    text = text_of(model.tokenizer, tokens)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", core.TruncationWarning)
        encoded = encode(model, text)
    start = time.perf_counter()
    result = core.run_attention(model, text)
    seconds = time.perf_counter() - start
    reference = auto_class(family).from_pretrained(str(path), attn_implementation="eager").eval()
    with torch.inference_mode():
        network = reference.get_encoder() if family in SEQ2SEQ_FAMILIES else reference
        output = network(**encoded.inputs, output_attentions=True)
    eager = torch.stack([a[0] for a in output.attentions]).float().numpy()
    layers, heads, n, _ = eager.shape
    assert n == len(result.tokens), (n, len(result.tokens))
    per_layer = windows(reference.config, layers)
    worst = {"rows": 0.0, "tiles": 0.0, "pooled mean": 0.0, "pooled max": 0.0, "whole": 0.0}
    masks_equal = True
    queries = np.unique(np.linspace(0, n - 1, ROWS).round().astype(int))
    middle = n // 2 - TILE // 2
    tiles = [
        (range(0, TILE), range(0, TILE)),
        (range(middle, middle + TILE), range(middle, middle + TILE)),
        (range(n - TILE, n), range(0, TILE)),
    ]
    whole = result.attentions
    for layer in range(layers):
        mask = expected_mask(family in CAUSAL, per_layer[layer], n)
        computed = result.computed(layer, range(n), range(n))
        masks_equal &= bool(np.array_equal(computed, mask))
        masks_equal &= bool((eager[layer][:, ~mask] == 0).all())
        for head in range(heads):
            expected = np.where(mask, eager[layer, head], np.nan)
            for query in queries:
                ours = result.row(layer, head, int(query))
                worst["rows"] = max(worst["rows"], difference(ours, expected[query]))
            for rows, cols in tiles:
                ours = result.tile(layer, head, rows, cols)
                worst["tiles"] = max(
                    worst["tiles"],
                    difference(ours, expected[rows.start : rows.stop, cols.start : cols.stop]),
                )
            for reduce in ("mean", "max"):
                grid, edges, _ = result.pooled(layer, head, size=POOLED, reduce=reduce)
                reference_grid = pooled_eager(
                    eager[layer, head].astype(np.float64), mask, edges, reduce
                )
                key = f"pooled {reduce}"
                worst[key] = max(worst[key], difference(grid.astype(np.float64), reference_grid))
        worst["whole"] = max(worst["whole"], float(np.abs(whole[layer] - eager[layer]).max()))
    return {
        "tokens": n,
        "layers": layers,
        "heads": heads,
        "windows": per_layer,
        "masks_equal": masks_equal,
        "run_attention_s": seconds,
        **worst,
        "worst": max(worst.values()),
    }


def report(args, rows: dict[str, dict], info: dict) -> str:
    lines = [
        f"### {info['date'][:10]}: exactness at {args.tokens:,} tokens, every tiny family "
        "(issue 21)",
        "",
        f"Run: `python bench/bench_exact_long.py --tokens {args.tokens}` at commit "
        f"{info['app']}, {info['date']}, {info['nproc']} CPUs, load average "
        f"{info['load_start']} at the start, {load_average()} at the end. Float32 tiny "
        "checkpoints of `tests/tiny_models.py` (2 layers × 4 heads; Llama, Mistral, Qwen2/3, "
        "Gemma 2/3, Phi-3 with 2 key-value heads; windows of 8), position tables raised; "
        f"reference: transformers' eager attention on the same ids. Target ≤ {TARGET:g}.",
        "",
        "| family | tokens | windows per layer | rows | tiles | pooled mean | pooled max | "
        "whole array | masks (computed = config's, eager 0 outside) | worst | |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for family, r in rows.items():
        if "error" in r:
            lines.append(f"| {family} | – | – | failed: {r['error']} |")
            continue
        met = r["worst"] <= TARGET and r["masks_equal"]
        lines.append(
            f"| {family} | {r['tokens']:,} | {', '.join(str(w or '–') for w in r['windows'])} | "
            f"{r['rows']:.1e} | {r['tiles']:.1e} | {r['pooled mean']:.1e} | "
            f"{r['pooled max']:.1e} | {r['whole']:.1e} | "
            f"{'equal' if r['masks_equal'] else 'DIFFER'} | {r['worst']:.1e} | "
            f"{'met' if met else 'missed'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    from tests.tiny_models import FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    args = parser.parse_args()
    info = {**machine(), "load_start": load_average()}
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="atlas-exact-") as scratch:
        for family in args.families:
            try:
                rows[family] = measure(family, args.tokens, Path(scratch))
            except Exception as exc:  # reported in the table, not hidden
                rows[family] = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
            print(family, rows[family], flush=True)
    text = report(args, rows, info)
    print(text)  # a journal section for bench/RESULTS.md


if __name__ == "__main__":
    main()
