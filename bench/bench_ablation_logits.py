"""Memory of `core.ablate_answer`: the answer rows' logits only (this tree) or all (`--base`).

    python bench/bench_ablation_logits.py [--tokens 2048] [--base main]

`ablate_answer` runs two fast passes per needle input (heads kept, heads zeroed); it now asks
`core.inference.predict_logits` for the rows that predict the answer only (`logits_to_keep`),
where before each pass unembedded all `n` rows (1.2 GB in float32 with Qwen's vocabulary of
151,936 at 2,048 tokens). Model: `bench_needle_logits.build` (the tests' tiny Llama with Qwen's
vocabulary), so the logits dominate. Each implementation runs in a fresh process: the peak
resident memory (VmHWM) of one input's `ablate_answer` above the resident memory just before
it (after a warm-up call), and its answer log-probabilities, which must agree. Memory only: no
timing, so no bench lock needed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# bench_long_context sets the offline environment as it is imported, before transformers is.
from bench.bench_browser import load_average, rss_mb
from bench.bench_long_context import text_of
from bench.bench_long_context_heads import NEEDLE, QUESTION
from bench.bench_needle_logits import build
from bench.bench_rollout_rows import module_at


def one_run(path: str, tokens: int, which: str, base: str) -> dict[str, float]:
    """In this process: one input's `ablate_answer` of `which` ("new": the tree's) and its
    peak memory."""
    import core

    if which == "new":
        ablate_answer = core.ablate_answer
    else:
        import core.retrieval

        # The old module reads `answer_logprob`, since removed from `core.retrieval`: lend it
        # `base`'s.
        old_retrieval = module_at(base, "core/retrieval.py", "old_retrieval")
        core.retrieval.answer_logprob = old_retrieval.answer_logprob
        ablate_answer = module_at(base, "core/ablation.py", "old_ablation").ablate_answer
    model = core.load_model(path)
    overhead = len(model.tokenizer(f" {NEEDLE} {QUESTION} {NEEDLE}").input_ids) + 2
    haystack = text_of(model.tokenizer, tokens - overhead)
    entry = core.needle_input(model, haystack, NEEDLE, QUESTION, 0.5)
    heads = [(0, 1), (1, 2)]
    ablate_answer(model, [entry], heads)  # warm up
    before = rss_mb(os.getpid())["VmRSS"]
    Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
    table = ablate_answer(model, [entry], heads)
    peak = rss_mb(os.getpid())["VmHWM"]
    return {
        "tokens": len(entry["input_ids"]),
        "answer_tokens": entry["answer"][1] - entry["answer"][0],
        "answer_logprob": float(table["answer_logprob"][0]),
        "answer_logprob_ablated": float(table["answer_logprob_ablated"][0]),
        "peak_above_mb": round(peak - before, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--base", default="main")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "WHICH"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        path, which = arguments.child
        print(json.dumps(one_run(path, arguments.tokens, which, arguments.base)))
        return
    print(f"load average before: {load_average()}")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="ablation-logits-") as scratch:
        path = str(build(Path(scratch), arguments.tokens + 64))
        for which in ("new", "old"):
            command = [sys.executable, __file__, "--tokens", str(arguments.tokens)]
            command += ["--base", arguments.base, "--child", path, which]
            output = subprocess.run(command, capture_output=True, text=True, check=True)
            runs[which] = json.loads(output.stdout.strip().splitlines()[-1])
            print(f"{which}: {json.dumps(runs[which])}", flush=True)
    for column in ("answer_logprob", "answer_logprob_ablated"):
        gap = abs(runs["new"][column] - runs["old"][column])
        print(f"|new − old| {column}: {gap:.3g}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
