"""Exact attention at long context without the n² tensor, side by side with a plain SDPA pass.

    flock /work/bench.lock python bench/bench_long_context.py            # 4,096 and 32,768 tokens
    flock /work/bench.lock python bench/bench_long_context.py --no-32k --no-write
    flock /work/bench.lock python bench/bench_long_context.py --no-32k --dtype bfloat16 --no-write

Builds a Llama-shaped checkpoint with random weights in a temporary directory (hidden 896,
14 query heads in 2 key-value groups of width 64, 4 layers, feed-forward 2,432, float32; the
tiny tests' SentencePiece-style tokenizer) and measures in one process, issue 21's targets:

* 4,096 tokens: `result.nbytes` (≤ 256 MB); the process's peak RSS growth during
  `core.run_attention` (≤ 1 GB, VmHWM reset through /proc/self/clear_refs before it);
  `run_attention`'s time against one plain forward pass of the same checkpoint loaded with
  transformers' own `attn_implementation="sdpa"` (≤ 2×, medians of 3); one exact row
  (≤ 50 ms, median of 20, a different query each time); a 256 × 256 mean-pooled overview of
  one head (≤ 1 s);
* 32,768 tokens: `run_attention` completes with the process's peak RSS ≤ 4 GB; one row ≤ 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.bench_browser import load_average, rss_mb, write_section  # noqa: E402

SECTION = "## Long context (exact attention without the n² tensor)"
SHAPE = {
    "hidden_size": 896,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "num_hidden_layers": 4,
    "intermediate_size": 2432,
}
MAX_POSITIONS = 32_768 + 64


def build_checkpoint(directory: Path, dtype: str = "float32") -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.tiny_models import build_tokenizer

    tokenizer = build_tokenizer("llama")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPE,
    )
    return saved(directory, LlamaForCausalLM, config, tokenizer, MAX_POSITIONS, dtype)


def saved(directory: Path, network_class, config, tokenizer, positions: int, dtype: str) -> Path:
    """A seeded random `network_class(config)` in `dtype`, saved with `tokenizer`."""
    import torch

    tokenizer.model_max_length = positions
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = network_class(config).eval().to(getattr(torch, dtype))
    network.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def text_of(tokenizer, tokens: int) -> str:
    """A text of the tests' corpus sentences that tokenizes to at most `tokens` tokens."""
    from tests.tiny_models import corpus

    sentences = list(corpus())
    words: list[str] = []
    index = 0
    while len(tokenizer(" ".join(words)).input_ids) < tokens:
        words.extend(sentences[index % len(sentences)].split())
        index += 1
    low, high = 0, len(words)
    while low < high:  # the longest prefix of words that fits
        middle = (low + high + 1) // 2
        if len(tokenizer(" ".join(words[:middle])).input_ids) <= tokens:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])


def reset_peak() -> float:
    """Reset this process's peak RSS (VmHWM) to its current RSS; returns that RSS in MB."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return rss_mb(os.getpid())["VmRSS"]


def timed(function, repeat: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def measure(path: Path, tokens: int, repeat: int, baseline: bool) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM

    import core

    model = core.load_model(str(path))
    text = text_of(model.tokenizer, tokens)
    figures: dict[str, float] = {}
    if baseline:
        plain = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="sdpa").eval()
        inputs = plain_inputs = model.tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            plain(**plain_inputs)  # warm up
            figures["sdpa_s"], _ = timed(lambda: plain(**inputs), repeat)
        del plain
    core.run_attention(model, text[: len(text) // 8])  # warm up the code paths
    before = reset_peak()
    start = time.perf_counter()
    result = core.run_attention(model, text)
    first = time.perf_counter() - start
    figures["rss_growth_mb"] = rss_mb(os.getpid())["VmHWM"] - before
    figures["peak_rss_mb"] = rss_mb(os.getpid())["VmHWM"]
    figures["tokens"] = len(result.tokens)
    figures["nbytes_mb"] = result.nbytes / 2**20
    figures["dense_mb"] = result.pieces().dense_nbytes / 2**20
    if repeat > 1:
        rest, _ = timed(lambda: core.run_attention(model, text), repeat - 1)
        figures["run_attention_s"] = statistics.median([first] + [rest] * (repeat - 1))
    else:
        figures["run_attention_s"] = first
    n = len(result.tokens)
    queries = iter(range(n - 1, 0, -(n // 25)))
    figures["row_ms"] = 1000 * timed(lambda: result.row(3, 5, next(queries)), 20)[0]
    pooled_repeat = 3 if n <= 4096 else 1
    figures["pooled_s"], _ = timed(
        lambda: result.pooled(3, 5, size=256, reduce="mean"), pooled_repeat
    )
    if "sdpa_s" in figures:
        figures["ratio"] = figures["run_attention_s"] / figures["sdpa_s"]
    return figures


def section(
    command: str, rows: dict[int, dict[str, float]], load_before: str, dtype: str = "float32"
) -> str:
    import torch

    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    lines = [
        SECTION,
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; `{command}`; {os.cpu_count()} CPUs "
        f"(nproc), {ram_gb:.1f} GB RAM, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); load average before: {load_before}.",
        f"Llama-shaped checkpoint, random weights, {dtype}: "
        + ", ".join(f"{k} {v}" for k, v in SHAPE.items())
        + ". Capture = `core.run_attention` (one pass of the fast attention keeping queries, "
        "keys and each row's float32 log-sum-exp); SDPA = one plain forward of the same "
        "checkpoint loaded with "
        'transformers\' `attn_implementation="sdpa"`.',
        "",
        "| tokens | result held | dense would be | RSS growth | peak RSS | SDPA pass "
        "| run_attention | ratio | one row | 256² pooled |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for figures in rows.values():
        sdpa = f"{figures['sdpa_s']:.2f} s" if "sdpa_s" in figures else "–"
        ratio = f"{figures['ratio']:.2f} ×" if "ratio" in figures else "–"
        lines.append(
            f"| {figures['tokens']:,.0f} | {figures['nbytes_mb']:,.1f} MB "
            f"| {figures['dense_mb']:,.0f} MB | {figures['rss_growth_mb']:,.0f} MB "
            f"| {figures['peak_rss_mb']:,.0f} MB | {sdpa} | {figures['run_attention_s']:.2f} s "
            f"| {ratio} | {figures['row_ms']:.1f} ms | {figures['pooled_s']:.2f} s |"
        )
    lines.append(f"\nLoad average after: {load_average()}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-32k", action="store_true", help="4,096 tokens only")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs at 4,096 tokens")
    parser.add_argument("--no-write", action="store_true", help="print instead of writing")
    parser.add_argument(
        "--dtype", default="float32", help="stored dtype of the checkpoint (e.g. bfloat16)"
    )
    args = parser.parse_args()

    rows: dict[int, dict[str, float]] = {}
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="atlas-long-") as directory:
        path = build_checkpoint(Path(directory), args.dtype)
        rows[4096] = measure(path, 4096, args.repeat, baseline=True)
        print(rows[4096], flush=True)
        if not args.no_32k:
            rows[32768] = measure(path, 32_768, 1, baseline=False)
            print(rows[32768], flush=True)
    command = "python bench/bench_long_context.py" + (" --no-32k" if args.no_32k else "")
    command += f" --dtype {args.dtype}" if args.dtype != "float32" else ""
    text = section(command, rows, load_before, args.dtype)
    if args.no_write:
        print(text)
    else:
        write_section(text, section=SECTION)
        print(text)


if __name__ == "__main__":
    main()
