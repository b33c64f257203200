"""The Qwen2.5-0.5B shape in the app, as a new user would open it (issue 21).

    flock /work/bench.lock python bench/bench_qwen_app.py                 # 2,048 and 4,096
    flock /work/bench.lock python bench/bench_qwen_app.py --sizes 2048

Builds a Qwen2 checkpoint with Qwen2.5-0.5B's shape and random weights in a temporary directory
(hidden 896, 24 layers, 14 query heads in 2 key-value groups of width 64, feed-forward 4,864,
its real vocabulary of 151,936 rows, tied embeddings, rope theta 10⁶, 32,768 positions, saved
in bfloat16) with the tests' offline byte-level BPE tokenizer (`tests/tiny_models.py`), starts
the real app (`streamlit run streamlit_app.py`, private mode: no token cap) and opens the
Attention page in headless Chromium with the checkpoint's path and a 2,048- and a 4,096-token
text in the link. Target: the page loads and paints (the pooled overview and the exact detail
window, no error), and the server's peak memory stays ≤ weights + 2 GB.

Measured per text: seconds from the navigation to the painted page; the server's peak RSS
(VmHWM of the `streamlit` process, reset through /proc/<pid>/clear_refs before each page,
so each peak is that page's); and, in this process afterwards (the app idle), one forward pass
of the same checkpoint loaded with transformers' defaults (SDPA, stored dtype, every
position's logits) and `core.run_attention` on the same text, so the app's time is reported as
a multiple of the SDPA pass.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.bench_browser import load_average, machine, rss_mb  # noqa: E402
from bench.bench_long_context import text_of  # noqa: E402
from bench.bench_long_context_heads import QWEN_SHAPE  # noqa: E402

QWEN25_05B = {
    **QWEN_SHAPE,
    "vocab_size": 151_936,
    "max_position_embeddings": 32_768,
    "rms_norm_eps": 1e-6,
    "use_sliding_window": False,
}
"""Qwen2.5-0.5B's config.json, the sizes only (494 M parameters)."""
TARGET_EXTRA_GB = 2.0
VIEWPORT = {"width": 1440, "height": 900}
SHOTS = REPO / "artifacts" / "screenshots"


def build_checkpoint(directory: Path) -> Path:
    """Qwen2.5-0.5B's shape, random weights saved in bfloat16, with an offline tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.tiny_models import build_tokenizer

    tokenizer = build_tokenizer("qwen2")
    tokenizer.model_max_length = QWEN25_05B["max_position_embeddings"]
    config = Qwen2Config(
        **QWEN25_05B,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        # Built in bfloat16 directly: a float32 copy of 494 M parameters is not needed.
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            model = Qwen2ForCausalLM(config).eval()
        finally:
            torch.set_default_dtype(default)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


class PeakSampler:
    """Samples a process's RSS every 50 ms (VmHWM is the kernel's own peak; this is a check)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mb(self.pid)["VmRSS"])
            self._stop.wait(0.05)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def reset_peak(pid: int) -> float:
    """Reset a process's VmHWM to its current RSS; returns that RSS in MB."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    return rss_mb(pid)["VmRSS"]


def visit(
    browser, app, model: str, text: str, timeout: float, shot: str | None, long: bool = True
) -> dict:
    """Open the Attention page on `text`; seconds to painted, the server's peak, what it says."""
    from tests.e2e.harness import (
        ERROR,
        EXCEPTION,
        block_external_requests,
        full_page_screenshot,
        wait_for_charts,
        wait_for_explorer,
        wait_for_run,
    )

    context = browser.new_context(viewport=VIEWPORT)
    block_external_requests(context)
    page = context.new_page()
    page.set_default_timeout(timeout * 1000)
    before = reset_peak(app.pid)
    result: dict = {"rss_before_mb": before}
    try:
        with PeakSampler(app.pid) as sampler:
            start = time.perf_counter()
            page.goto(app.url("/", model=model, text=text))
            wait_for_run(page, timeout)
            problems = page.locator(f"{ERROR}, {EXCEPTION}").all_inner_texts()
            if problems:
                result["errors"] = problems
            elif long:
                # The long view: the pooled overview and the exact detail window, both drawn.
                page.get_by_text("Detail (exact)").first.wait_for(timeout=timeout * 1000)
                wait_for_charts(page, 2, timeout)
                result["painted_s"] = time.perf_counter() - start
            else:
                wait_for_explorer(page, timeout)
                result["painted_s"] = time.perf_counter() - start
        result["peak_mb"] = rss_mb(app.pid)["VmHWM"]
        result["sampled_peak_mb"] = sampler.peak
        result["warnings"] = page.locator("[data-testid='stAlertContentWarning']").all_inner_texts()
        if shot:
            result["screenshot"] = str(full_page_screenshot(page, SHOTS / shot))
    finally:
        context.close()
    return result


def app_runs(path: Path, texts: dict[int, str], timeout: float) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import launch_browser, running_app

    results: dict = {}
    # Private mode said explicitly: no token cap, the memory check judges each text.
    with running_app(env={"ATLAS_PUBLIC": "0"}) as app, sync_playwright() as playwright:
        browser = launch_browser(playwright)
        try:
            # The first page loads the checkpoint (timed apart from the texts).
            start = time.perf_counter()
            results["load"] = visit(
                browser, app, str(path), "Hello world.", timeout, None, long=False
            )
            results["load"]["seconds"] = time.perf_counter() - start
            for n, text in texts.items():
                results[n] = visit(browser, app, str(path), text, timeout, f"qwen_{n}_1440.png")
                print(f"app, {n} tokens: {results[n]}", flush=True)
        finally:
            browser.close()
            results["log"] = app.log_tail(30)
    return results


def in_process(path: Path, texts: dict[int, str], repeat: int) -> dict:
    """One SDPA forward pass (transformers' defaults) and `core.run_attention`, per text."""
    import torch
    from transformers import AutoModelForCausalLM

    import core

    results: dict = {}
    reference = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="sdpa").eval()
    ours = core.load_model(str(path))
    weights = sum(p.numel() * p.element_size() for p in ours.model.parameters())
    results["weights_mb"] = weights / 2**20
    results["dtype"] = str(ours.dtype).removeprefix("torch.")
    results["parameters"] = ours.num_parameters
    for n, text in texts.items():
        ids = ours.tokenizer(text, return_tensors="pt").input_ids

        def sdpa(ids=ids) -> None:
            with torch.inference_mode():
                reference(input_ids=ids)

        sdpa_times = []
        for _ in range(repeat):
            gc.collect()
            start = time.perf_counter()
            sdpa()
            sdpa_times.append(time.perf_counter() - start)
        run_times = []
        for _ in range(repeat):
            gc.collect()
            start = time.perf_counter()
            result = core.run_attention(ours, text)
            run_times.append(time.perf_counter() - start)
        results[n] = {
            "tokens": int(ids.shape[1]),
            "sdpa_s": statistics.median(sdpa_times),
            "run_attention_s": statistics.median(run_times),
            "result_mb": result.nbytes / 2**20,
        }
        del result
        print(f"in process, {n} tokens: {results[n]}", flush=True)
    return results


def report(args, info: dict, app: dict, local: dict) -> str:
    weights_gb = local["weights_mb"] / 1024
    lines = [
        f"### {info['date'][:10]}: the Qwen2.5-0.5B shape in the app (issue 21)",
        "",
        f"Run: `flock /work/bench.lock python bench/bench_qwen_app.py --sizes "
        f"{' '.join(map(str, args.sizes))}` at commit {info['app']}, {info['date']}, "
        f"{info['nproc']} CPUs ({info['cpu']}), private mode, headless Chromium at 1440 × 900. "
        f"Load average {info['load_start']} at the start, {load_average()} at the end. "
        f"Checkpoint: Qwen2 config with Qwen2.5-0.5B's sizes, random weights, "
        f"{local['parameters'] / 1e6:.0f} M parameters in {local['dtype']} "
        f"({local['weights_mb']:,.0f} MB of weights), the tests' byte-level BPE tokenizer. "
        f"The first page (loading the checkpoint, a 3-token text) took "
        f"{app['load']['seconds']:.1f} s and peaked at {app['load']['peak_mb']:,.0f} MB.",
        "",
        "| tokens | page painted | server peak RSS (whole process) | growth during the page | "
        "target: weights + 2 GB | SDPA pass (transformers) | app ÷ SDPA | run_attention in "
        "process | ÷ SDPA | result held |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    limit = local["weights_mb"] + TARGET_EXTRA_GB * 1024
    for n in args.sizes:
        page, here = app[n], local[n]
        if "painted_s" not in page:
            lines.append(f"| {n:,} | failed: {' / '.join(page.get('errors', ['?']))} |")
            continue
        met = "met" if page["peak_mb"] <= limit else "missed"
        lines.append(
            f"| {here['tokens']:,} | {page['painted_s']:.1f} s | {page['peak_mb']:,.0f} MB | "
            f"{page['peak_mb'] - page['rss_before_mb']:,.0f} MB | ≤ {limit:,.0f} MB, {met} | "
            f"{here['sdpa_s']:.1f} s | {page['painted_s'] / here['sdpa_s']:.2f} × | "
            f"{here['run_attention_s']:.1f} s | {here['run_attention_s'] / here['sdpa_s']:.2f} × "
            f"| {here['result_mb']:.0f} MB |"
        )
    lines += [
        "",
        f"Weights {weights_gb:.2f} GB. Peak RSS is the kernel's VmHWM of the whole server "
        "process (Python, Streamlit, torch, the weights, the text), reset before each page to "
        "the RSS then (a 50 ms sampler agreed: "
        + ", ".join(f"{n:,}: {app[n].get('sampled_peak_mb', 0):,.0f} MB" for n in args.sizes)
        + "). The SDPA pass is the model loaded with transformers' defaults, computing every "
        "position's logits; medians of "
        f"{args.repeat}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    info = {**machine(), "load_start": load_average()}
    with tempfile.TemporaryDirectory(prefix="atlas-qwen05b-") as scratch:
        path = build_checkpoint(Path(scratch) / "qwen2.5-0.5b-shape")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        texts = {n: text_of(tokenizer, n) for n in args.sizes}
        app = app_runs(path, texts, args.timeout)
        local = in_process(path, texts, args.repeat)
    text = report(args, info, app, local)
    print(text)  # a journal section for bench/RESULTS.md


if __name__ == "__main__":
    main()
