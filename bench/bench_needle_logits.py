"""Memory of a needle run's answer probability: the answer rows' logits only, or all of them.

    python bench/bench_needle_logits.py [--tokens 2048]

`core.retrieval_scores` unembeds only the rows that predict the answer (`logits_to_keep`);
before, the whole `[n, vocab]` logits came back, 1.2 GB in float32 with Qwen's vocabulary of
151,936 at 2,048 tokens. The model is the tests' tiny Llama (2 layers × 4 heads, float32) with
its vocabulary raised to Qwen's and its positions to the input's, so the logits dominate what
one depth allocates. Each mode runs in a fresh process: the peak resident memory (VmHWM) of
one depth's `retrieval_scores`, above the process's resident memory just before it. Memory
only, which other work on the machine does not change: no timing, so no bench lock needed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# bench_long_context sets the offline environment as it is imported, before transformers is.
from bench.bench_browser import load_average, rss_mb
from bench.bench_long_context import text_of
from bench.bench_long_context_heads import NEEDLE, QUESTION, saved

QWEN_VOCABULARY = 151_936


def build(directory: Path, positions: int) -> Path:
    from tests.tiny_models import build_config, build_tokenizer, model_class

    tokenizer = build_tokenizer("llama")
    config = build_config("llama", tokenizer)
    config.vocab_size = QWEN_VOCABULARY
    config.max_position_embeddings = positions
    return saved(directory, model_class("llama"), config, tokenizer, positions, "float32")


def one_run(path: str, tokens: int, trimmed: bool) -> dict[str, float]:
    """In this process: one depth of `retrieval_scores` and its peak memory."""
    import os

    import core
    import core.retrieval as retrieval

    model = core.load_model(path)
    overhead = len(model.tokenizer(f" {NEEDLE} {QUESTION} {NEEDLE}").input_ids) + 2
    haystack = text_of(model.tokenizer, tokens - overhead)
    if not trimmed:
        retrieval._keeps_some_logits = lambda model: False  # the whole logits, as before
    core.retrieval_scores(model, haystack, NEEDLE, QUESTION, (0.5,))  # warm up
    before = rss_mb(os.getpid())["VmRSS"]
    Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
    scores = core.retrieval_scores(model, haystack, NEEDLE, QUESTION, (0.5,))
    peak = rss_mb(os.getpid())["VmHWM"]
    entry = scores.attrs["inputs"][0]
    return {
        "tokens": len(entry["input_ids"]),
        "answer_logprob": entry["answer_logprob"],
        "peak_above_mb": peak - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--child", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        path, mode = arguments.child
        print(json.dumps(one_run(path, arguments.tokens, mode == "trimmed")))
        return
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="needle-logits-") as scratch:
        path = str(build(Path(scratch), arguments.tokens + 64))
        for mode in ("trimmed", "whole"):
            command = [sys.executable, __file__, "--tokens", str(arguments.tokens)]
            output = subprocess.run(
                [*command, "--child", path, mode], capture_output=True, text=True, check=True
            )
            figures = json.loads(output.stdout.strip().splitlines()[-1])
            print(f"{mode}: {json.dumps(figures)}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
