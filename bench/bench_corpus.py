"""Benchmark the corpus atlas: throughput, cost beyond the forward pass, Ray, peak memory.

Usage (from the repository root):

    python bench/bench_corpus.py            # everything (about 15 minutes on 2 busy cores)
    python bench/bench_corpus.py --quick    # fewer inputs, no Ray, no 10,000-sentence run
    python bench/bench_corpus.py --scale 0.25 --no-memory   # a quarter of the inputs
    python bench/bench_corpus.py --memory-only              # only the 10,000-sentence run

Models: the embedded MiniLM (6 × 12) and a randomly initialised BERT-base shape (12 layers ×
12 heads, hidden 768, eager attention, MiniLM's uncased vocabulary; saved to a temporary
directory so Ray workers can load it by path, nothing downloaded).

Inputs of exactly N tokens (N = 32, 128, special tokens included): consecutive sentences of
the bundled corpus joined until they reach N tokens, then cut to N by the run's truncation,
so every batch is full and no padding flatters the numbers.

* sentences/s: `run_corpus` wall time on a fresh store (tokenising, forward pass, statistics,
  top-k examples, DuckDB writes), batch size 16.
* forward only: the same batches through `core.corpus.run.forward_batch` (the padded forward
  pass with attention returned as numpy), timed before and after the full run and averaged, as
  the machine is shared. Cost beyond the forward pass = full / forward − 1, in wall time and in
  this process's CPU time (less sensitive to other programs on a shared machine).
* Ray: the same run with `ray_address="local"`, 2 actors of 1 CPU each; "steady" is the rate
  between the first and last progress callbacks (actor start-up and model loading excluded),
  "wall" includes them (not Ray's own start-up, which happens before).
* Peak memory: a fresh process runs the embedded model over 10,000 sentences (the bundled
  corpus repeated, max 128 tokens, natural lengths) and reports its peak RSS, against the same
  process's peak RSS after loading the model and after 1,000 sentences.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from core import EMBEDDED_MODEL, load_model  # noqa: E402
from core.corpus import CorpusStore, bundled_corpus, run_corpus  # noqa: E402
from core.corpus.run import encode_sentence, forward_batch  # noqa: E402

BATCH_SIZE = 16


def random_bert_base(directory: Path) -> str:
    """Save a random BERT-base-shaped model with MiniLM's tokenizer; return its path."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from core.models import embedded_model_path

    torch.manual_seed(0)
    config = BertConfig(attn_implementation="eager")  # 12 layers, 12 heads, hidden 768
    BertModel(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(str(embedded_model_path())).save_pretrained(directory)
    return str(directory)


def inputs_of(model, tokens: int, count: int) -> list[str]:
    """`count` passages of at least `tokens` tokens (cut to `tokens` by the run)."""
    sentences = bundled_corpus("austen")
    passages, current, position = [], [], 0
    while len(passages) < count:
        current.append(sentences[position % len(sentences)])
        position += 1
        text = " ".join(current)
        if len(model.tokenizer(text)["input_ids"]) >= tokens:
            passages.append(text)
            current = []
    return passages


def forward_seconds(model, texts: list[str], tokens: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the forward passes alone."""
    encoded = [encode_sentence(model, t, tokens) for t in texts]
    start, cpu = time.perf_counter(), time.process_time()
    for begin in range(0, len(encoded), BATCH_SIZE):
        forward_batch(model, encoded[begin : begin + BATCH_SIZE])
    return time.perf_counter() - start, time.process_time() - cpu


def full_run(
    model, texts, tokens, store_dir: Path, tag: str, **kwargs
) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, steady sentences/s) of a fresh run."""
    stamps: list[tuple[float, int]] = []
    store = CorpusStore(store_dir / f"{tag}.duckdb")
    start, cpu = time.perf_counter(), time.process_time()
    run_corpus(
        model,
        texts,
        max_tokens=tokens,
        store=store,
        batch_size=BATCH_SIZE,
        progress=lambda done, *_: stamps.append((time.perf_counter(), done)),
        **kwargs,
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    (t0, d0), (t1, d1) = stamps[0], stamps[-1]
    steady = (d1 - d0) / (t1 - t0) if t1 > t0 else float("nan")
    return wall, cpu, steady


def throughput(name: str, model, counts: dict[int, int], store_dir: Path, ray: bool) -> list[str]:
    rows = []
    for tokens, count in counts.items():
        texts = inputs_of(model, tokens, count)
        before = forward_seconds(model, texts, tokens)
        wall, cpu, _ = full_run(model, texts, tokens, store_dir, f"{name}-{tokens}")
        after = forward_seconds(model, texts, tokens)
        forward_wall, forward_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        ray_cells = "–"
        if ray:
            ray_wall, _, ray_steady = full_run(
                model, texts, tokens, store_dir, f"{name}-{tokens}-ray", ray_address="local"
            )
            ray_cells = f"{count / ray_wall:.1f} wall, {ray_steady:.1f} steady"
        rows.append(
            f"| {name} | {tokens} | {count} | {count / wall:.1f} | {count / forward_wall:.1f} "
            f"| {(wall / forward_wall - 1) * 100:+.0f} % | {(cpu / forward_cpu - 1) * 100:+.0f} % "
            f"| {ray_cells} | {os.getloadavg()[0]:.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(count: int, store: str) -> None:
    """Run in a fresh process: print peak RSS after loading, after 1,000 and after `count`."""
    model = load_model(EMBEDDED_MODEL)
    sentences = bundled_corpus("austen")
    corpus = [sentences[i % len(sentences)] + f" ({i // len(sentences)})" for i in range(count)]
    print(f"loaded {_peak_mb():.0f}", flush=True)
    marks = {}

    def progress(done, *_):
        if done >= 1000 and "1000" not in marks:
            marks["1000"] = _peak_mb()

    start = time.perf_counter()
    run_corpus(model, corpus, max_tokens=128, store=store, batch_size=BATCH_SIZE, progress=progress)
    seconds = time.perf_counter() - start
    print(f"after1000 {marks['1000']:.0f}", flush=True)
    print(f"final {_peak_mb():.0f} seconds {seconds:.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the number of inputs (busy machine)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the 10,000-sentence run")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1: CPU times free of spinning)"
    )
    parser.add_argument("--memory-only", action="store_true", help="only the 10,000-sentence run")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--store", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.store)
        return

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(f"# bench_corpus {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs")
    print(f"arguments: {' '.join(sys.argv[1:]) or '(none)'}")
    print(f"load average at start: {os.getloadavg()}")
    header = (
        "| model | tokens | inputs | sentences/s | forward only /s | beyond forward (wall) "
        "| beyond forward (CPU) | local Ray, 2 workers (/s) | load |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
    )
    print(header)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        ray = not args.quick

        def scaled(counts: dict[int, int]) -> dict[int, int]:
            return {t: max(BATCH_SIZE, round(c * args.scale)) for t, c in counts.items()}

        if not args.memory_only:
            embedded = load_model(EMBEDDED_MODEL)
            small = {32: 64, 128: 32} if args.quick else {32: 512, 128: 128}
            throughput("MiniLM 6×12", embedded, scaled(small), scratch, ray)
            bert = load_model(random_bert_base(scratch / "bert-base"))
            big = {32: 32, 128: 16} if args.quick else {32: 128, 128: 48}
            throughput("random BERT-base 12×12", bert, scaled(big), scratch, ray)
            if ray:
                import ray as ray_module

                ray_module.shutdown()
        if not args.quick and not args.no_memory:
            count = 10_000
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--memory-child",
                    str(count),
                    "--store",
                    str(scratch / "memory.duckdb"),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"\npeak RSS, MiniLM over {count:,} sentences (max 128 tokens), in MB:")
            print(child.stdout.strip())
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
