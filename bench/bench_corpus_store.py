"""Benchmark the corpus store's growth under a visitor who pastes a new corpus and presses Run,
again and again (issue 24's attack), with and without the size cap.

Usage (from the repository root; take the bench lock on the shared machine):

    flock /work/bench.lock python bench/bench_corpus_store.py               # 60 runs, 20 MB cap
    python bench/bench_corpus_store.py --runs 20 --cap 10M --sentences 8    # a quick look

Each run is what the Corpus page does in public mode for a pasted corpus: the store handle of
`ui.store.corpus_store` (the session's owner token, the public lifetime) and `run_corpus` with
the page's batch size, on the embedded MiniLM (6 × 12, offline) at 32 tokens per sentence.
Every corpus is a new random sample of the bundled corpus's sentences, so no run reopens
another. The same corpus goes into two fresh stores one after the other: one without a cap,
one with `--cap` (smaller than the public default of 200 MB so that eviction starts within a
few dozen runs; the mechanism does not depend on the figure). After each run the process lets
go of both files (`release`) and their size on disk is read.

Reported: the file sizes every `--every` runs, the runs the capped store keeps, each store's
growth per run and per minute of running, and the run times (the capped store's include
evicting and rewriting the file).

`--rewrite-mb 200` then times the rewrite at the public cap's size: a store filled to that
many MB with synthetic shared runs (random statistics, 50 runs), one visitor run in it; the
time of "Delete my corpus runs" (`delete_runs`, which rewrites the file) and of an eviction
down to 80 % of a cap 10 % under the file's size (`prune`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

import numpy as np  # noqa: E402

from core import EMBEDDED_MODEL, load_model  # noqa: E402
from core.corpus import bundled_corpus, run_corpus  # noqa: E402
from server.settings import parse, setting  # noqa: E402
from ui.corpus import BATCH_SIZE  # noqa: E402
from ui.store import corpus_store  # noqa: E402

MB = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--sentences", type=int, default=16, help="sentences per pasted corpus")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--cap", default="20M", help="the capped store's size cap, e.g. 20M")
    parser.add_argument("--every", type=int, default=10, help="print sizes every N runs")
    parser.add_argument(
        "--rewrite-mb", type=int, default=0, help="also time a rewrite at this size"
    )
    parser.add_argument("--no-growth", action="store_true", help="only the rewrite timing")
    args = parser.parse_args()
    cap = parse(setting("ATLAS_MAX_CORPUS_STORE_BYTES"), args.cap)

    print(f"python {' '.join(sys.argv)}")
    print(
        f"date {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()}"
    )
    if not args.no_growth:
        growth(args, cap)
    if args.rewrite_mb:
        rewrite(args.rewrite_mb)
    print(f"\nload average at end {os.getloadavg()}")


def growth(args: argparse.Namespace, cap: int | None) -> None:
    """The pasting visitor's runs into an uncapped and a capped store."""
    model = load_model(EMBEDDED_MODEL)
    pool = bundled_corpus("austen")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch:
        stores = {
            "no cap": corpus_store(
                public=True,
                shared=False,
                owner="bench visitor",
                max_bytes=None,
                path=str(Path(scratch) / "free.duckdb"),
            ),
            f"cap {args.cap}": corpus_store(
                public=True,
                shared=False,
                owner="bench visitor",
                max_bytes=cap,
                path=str(Path(scratch) / "capped.duckdb"),
            ),
        }
        seconds = {name: [] for name in stores}
        sizes = {name: [] for name in stores}
        print("\n| runs | " + " | ".join(f"{n} (MB)" for n in stores) + " | runs kept (cap) |")
        print("| ---: | " + " | ".join("---:" for _ in stores) + " | ---: |")
        for index in range(1, args.runs + 1):
            chosen = rng.choice(len(pool), size=args.sentences, replace=False)
            corpus = [pool[i] for i in sorted(chosen)]
            for name, store in stores.items():
                started = time.perf_counter()
                run_corpus(
                    model, corpus, max_tokens=args.tokens, batch_size=BATCH_SIZE, store=store
                )
                seconds[name].append(time.perf_counter() - started)
                store.release()
                sizes[name].append(store.file_bytes())
            if index % args.every == 0 or index == args.runs:
                kept = len(stores[f"cap {args.cap}"].runs())
                cells = " | ".join(f"{sizes[n][-1] / MB:.1f}" for n in stores)
                print(f"| {index} | {cells} | {kept} |")

        print(
            "\n| store | final size (MB) | largest (MB) | growth per run (MB) | growth per "
            "minute of runs (MB) | run time median / max (s) |"
        )
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        for name in stores:
            grown = (sizes[name][-1] - sizes[name][0]) / MB
            per_run = grown / max(args.runs - 1, 1)
            minutes = sum(seconds[name][1:]) / 60
            print(
                f"| {name} | {sizes[name][-1] / MB:.1f} | {max(sizes[name]) / MB:.1f} | "
                f"{per_run:.2f} | {grown / minutes:.1f} | "
                f"{statistics.median(seconds[name]):.2f} / {max(seconds[name]):.2f} |"
            )


def rewrite(megabytes: int) -> None:
    """Time deleting a visitor's run and evicting old runs in a store of `megabytes` MB."""
    import duckdb

    from core.corpus import CorpusStore
    from core.corpus.store import RunRecord

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "big.duckdb"
        CorpusStore(path).release()  # the schema
        rows = megabytes * MB // 150  # a sample row of 12 random doubles takes ≈ 150 bytes
        connection = duckdb.connect(str(path))
        connection.execute(
            "INSERT INTO runs (run_id, model, corpus_hash, max_tokens, mode, statistics, "
            "num_layers, num_heads, total, done, truncated, seconds) "
            "SELECT 'synthetic' || i, 'm', 'h' || i, 32, 'default', 's', 6, 12, 1, 1, 0, 0 "
            "FROM range(50) t(i)"
        )
        connection.execute(
            "INSERT INTO head_sample SELECT 'synthetic' || (i % 50), i // 50, 0, 0, "
            "list_transform(range(12), lambda x: random()) FROM range(?) t(i)",
            [rows],
        )
        connection.close()
        visitor = CorpusStore(path, owner="bench visitor")
        record = RunRecord(visitor.scope("v"), "m", "v", 32, "default", ("s",), 1, 1, 1, 0, 0, 0)
        visitor.create_run(record, ["A visitor's sentence."])
        visitor.release()
        before = visitor.file_bytes()
        started = time.perf_counter()
        visitor.delete_runs()
        deleted = time.perf_counter() - started
        visitor.release()
        after = visitor.file_bytes()
        capped = CorpusStore(path, max_bytes=int(after * 0.9))
        started = time.perf_counter()
        evicted = capped.prune()
        evicting = time.perf_counter() - started
        capped.release()
        print(
            f"\nrewrite at {before / MB:.0f} MB: delete_runs {deleted:.2f} s "
            f"({before / MB:.1f} → {after / MB:.1f} MB); prune to 80 % of a "
            f"{after * 0.9 / MB:.0f} MB cap: {evicted} runs evicted in {evicting:.2f} s "
            f"(→ {capped.file_bytes() / MB:.1f} MB)"
        )


if __name__ == "__main__":
    main()
