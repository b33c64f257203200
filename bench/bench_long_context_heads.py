"""Sink profile, needle run and ablation at long context, as multiples of one forward pass.

    flock /work/bench.lock python bench/bench_long_context_heads.py
    flock /work/bench.lock python bench/bench_long_context_heads.py --only tiny --no-write
    flock /work/bench.lock python bench/bench_long_context_heads.py --sink-only --no-write

Issue 23's targets, each model measured in one process:

* a Qwen2.5-0.5B-shaped checkpoint with random weights, stored and run in bfloat16 (hidden 896,
  24 layers, 14 query heads in 2 key-value groups of width 64, feed-forward 4,864, tied
  embeddings), but with the tiny tests' byte-level BPE tokenizer and its vocabulary of about
  800 tokens instead of Qwen's 151,936 (the vocabulary only sizes the embedding and the
  output layer: what is measured here is attention), at 2,048 tokens;
* the tests' tiny Llama checkpoint (float32, 2 layers × 4 heads, positions raised to 8,448) at
  8,192 tokens.

The forward pass is one pass of the same loaded model with core's fast attention (SDPA, what
`load_model` gives for generation), median of `--repeat`. "Sink profile" is
`core.run_attention` (the capturing pass) plus `core.sink_profile` (target: ≤ 3 forward
passes); "needle run" is `core.retrieval_scores` at depths 0.1, 0.5, 0.9 with each input as
long as the measured length (target: ≤ 10 forward passes); "ablation" is one
`core.ablate_heads` call (two passes: without and with the heads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# bench_long_context sets the offline environment as it is imported, before transformers is.
from bench.bench_browser import load_average, machine, rss_mb, write_section
from bench.bench_long_context import saved, text_of, timed

SECTION = "## Long-context heads (sink profile, needle run, ablation)"
QWEN_SHAPE = {
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "intermediate_size": 4864,
    "tie_word_embeddings": True,
    "rope_theta": 1_000_000.0,
}
NEEDLE = "The secret word that opens the old garden gate is lantern."
QUESTION = "What is the secret word that opens the old garden gate?"
DEPTHS = (0.1, 0.5, 0.9)


def build_qwen(directory: Path, positions: int) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.tiny_models import build_tokenizer

    tokenizer = build_tokenizer("qwen2")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **QWEN_SHAPE,
    )
    return saved(directory, Qwen2ForCausalLM, config, tokenizer, positions, "bfloat16")


def build_tiny_llama(directory: Path, positions: int) -> Path:
    from tests.tiny_models import build_config, build_tokenizer, model_class

    tokenizer = build_tokenizer("llama")
    config = build_config("llama", tokenizer)
    config.max_position_embeddings = positions
    return saved(directory, model_class("llama"), config, tokenizer, positions, "float32")


def measure(path: Path, tokens: int, repeat: int, sink_only: bool = False) -> dict[str, Any]:
    import torch

    import core
    from core.capture import fast_attention

    model = core.load_model(str(path))
    text = text_of(model.tokenizer, tokens)
    ids = model.tokenizer(text, return_tensors="pt").input_ids

    def forward() -> None:
        with torch.inference_mode(), fast_attention():
            model.model(input_ids=ids)

    forward()  # warm up
    figures: dict[str, Any] = {"tokens": ids.shape[-1]}
    # Forward passes before and after the rest, so that a change of load shows in their spread.
    passes = [timed(forward, 1)[0] for _ in range(repeat)]

    profiles = []

    def profiled() -> tuple[float, float]:
        start = time.perf_counter()
        result = core.run_attention(model, text)
        middle = time.perf_counter()
        profiles.append(core.sink_profile(result))
        return middle - start, time.perf_counter() - middle

    splits = [profiled() for _ in range(repeat)]
    figures["capture_s"] = statistics.median(capture for capture, _ in splits)
    figures["profile_s"] = statistics.median(profile for _, profile in splits)
    profile = profiles[-1]
    print(f"  sink profile {figures['capture_s']:.2f} + {figures['profile_s']:.2f} s", flush=True)

    if sink_only:
        return _ratios(figures, passes + [timed(forward, 1)[0] for _ in range(repeat)])
    overhead = len(model.tokenizer(f" {NEEDLE} {QUESTION} {NEEDLE}").input_ids) + 2
    haystack = text_of(model.tokenizer, tokens - overhead)
    start = time.perf_counter()
    scores = core.retrieval_scores(model, haystack, NEEDLE, QUESTION, DEPTHS)
    figures["needle_s"] = time.perf_counter() - start
    figures["needle_tokens"] = max(len(e["input_ids"]) for e in scores.attrs["inputs"])
    print(f"  needle run {figures['needle_s']:.2f} s", flush=True)

    controls = core.ablation_controls(scores, profile, k=5)
    start = time.perf_counter()
    core.ablate_heads(model, text, controls["retrieval"])
    figures["ablation_s"] = time.perf_counter() - start
    return _ratios(figures, passes + [timed(forward, 1)[0] for _ in range(repeat)])


def _ratios(figures: dict[str, Any], passes: list[float]) -> dict[str, Any]:
    """`figures` with the forward pass's median and range and each time as a multiple of it."""
    figures["forward_s"] = statistics.median(passes)
    figures["forward_spread"] = f"{min(passes):.2f}–{max(passes):.2f}"
    figures["sink_ratio"] = (figures["capture_s"] + figures["profile_s"]) / figures["forward_s"]
    for name in ("needle", "ablation"):
        if f"{name}_s" in figures:
            figures[f"{name}_ratio"] = figures[f"{name}_s"] / figures["forward_s"]
    figures["peak_rss_mb"] = rss_mb(os.getpid())["VmHWM"]
    return figures


def section(command: str, rows: dict[str, dict[str, float]], loads: list[str]) -> str:
    where = machine()
    lines = [
        SECTION,
        "",
        f"{where['date']}; `{command}`; {where['nproc']} CPUs ({where['cpu']}), {where['ram']} "
        f"RAM, Python {where['python']}, torch {where['torch']}, commit {where['app']}; load "
        f"average before: {loads[0]}, after: {loads[1]}.",
        "Qwen2.5-0.5B shape = "
        + ", ".join(f"{k} {v}" for k, v in QWEN_SHAPE.items())
        + ", random weights in bfloat16, with the tiny tests' BPE tokenizer (a vocabulary of "
        "about 800, not Qwen's 151,936: only the embedding and output layer would grow). "
        "Tiny Llama = the tests' checkpoint (float32, 2 layers × 4 heads) with 8,448 positions. "
        "Forward = one pass of the same loaded model with core's fast (SDPA) attention, median "
        "(and range) of `--repeat` passes before and as many after the rest. Sink profile = "
        "`run_attention` (capturing pass) + `sink_profile`, medians of `--repeat`; needle run = "
        "`retrieval_scores` at depths 0.1 / 0.5 / 0.9 (three capturing passes and the answer "
        "rows); ablation = one `ablate_heads` call (two passes).",
        "",
        "| model | tokens | forward | capture + profile | sink profile ÷ forward (≤ 3) "
        "| profile alone ÷ forward | needle run (3 depths) | needle ÷ forward (≤ 10) "
        "| ablation ÷ forward | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in rows.items():
        needle = ablation = "not run (`--sink-only`)"
        if "needle_s" in f:
            needle = (
                f"{f['needle_s']:.2f} s ({f['needle_tokens']:,.0f} tokens each) "
                f"| {f['needle_ratio']:.2f} ×"
            )
            ablation = f"{f['ablation_ratio']:.2f} ×"
        else:
            needle += " | —"
        lines.append(
            f"| {name} | {f['tokens']:,.0f} | {f['forward_s']:.2f} s ({f['forward_spread']}) "
            f"| {f['capture_s']:.2f} + {f['profile_s']:.2f} s | {f['sink_ratio']:.2f} × "
            f"| {f['profile_s'] / f['forward_s']:.2f} × | {needle} | {ablation} "
            f"| {f['peak_rss_mb']:,.0f} MB |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["qwen", "tiny"], help="measure one model only")
    parser.add_argument("--repeat", type=int, default=3, help="timed forward passes (median)")
    parser.add_argument("--no-write", action="store_true", help="print instead of writing")
    parser.add_argument(
        "--sink-only", action="store_true", help="the forward pass and sink profile only"
    )
    args = parser.parse_args()

    loads = [load_average()]
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="atlas-heads-") as directory:
        if args.only in (None, "qwen"):
            print("Qwen2.5-0.5B shape, 2,048 tokens", flush=True)
            path = build_qwen(Path(directory) / "qwen", positions=4096)
            rows["Qwen2.5-0.5B shape (bf16)"] = measure(path, 2048, args.repeat, args.sink_only)
        if args.only in (None, "tiny"):
            print("tiny Llama, 8,192 tokens", flush=True)
            path = build_tiny_llama(Path(directory) / "llama", positions=8448)
            rows["tiny Llama (float32)"] = measure(path, 8192, args.repeat, args.sink_only)
    loads.append(load_average())
    command = "python bench/bench_long_context_heads.py" + (
        f" --only {args.only}" if args.only else ""
    )
    command += " --sink-only" if args.sink_only else ""
    text = section(command, rows, loads)
    if not args.no_write:
        write_section(text, section=SECTION)
    print(text)


if __name__ == "__main__":
    main()
