"""`python -m core.corpus`: run the corpus atlas from a terminal (optionally on a Ray cluster).

    python -m core.corpus --corpus austen --max-tokens 64
    python -m core.corpus --model bert-base-uncased --corpus my.jsonl --ray-address local

Writes the same DuckDB tables as the page, in the same file by default: the command and a
running app use it at once (each holds the file only while it reads or writes a step). Its runs
are shared, never expire and are not capped. Resumes a stopped run, and prints progress and, at
the end, the labelled heads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.corpus.inputs import BUNDLED_CORPORA, bundled_corpus, read_corpus_file
from core.corpus.run import DEFAULT_BATCH_SIZE, run_corpus
from core.corpus.statistics import MODES
from core.corpus.store import STORE_ENV, CorpusStore
from core.errors import AtlasError
from core.models import EMBEDDED_MODEL, load_model


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.corpus",
        description="Measure every attention head's statistics over a corpus into DuckDB.",
    )
    parser.add_argument("--model", default=EMBEDDED_MODEL, help="Hub id or local directory")
    parser.add_argument(
        "--corpus",
        default="austen",
        help=f"bundled corpus ({', '.join(BUNDLED_CORPORA)}) or a .txt/.csv/.jsonl file",
    )
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--mode", choices=MODES, default="default")
    parser.add_argument(
        "--store", default=None, help=f"DuckDB file (default: ${STORE_ENV} or cache)"
    )
    parser.add_argument(
        "--ray-address", default=None, help='Ray cluster address, or "local" for a local instance'
    )
    parser.add_argument("--workers", type=int, default=2, help="Ray actors (model replicas)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N sentences only")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.corpus in BUNDLED_CORPORA:
            sentences = bundled_corpus(args.corpus)
        else:
            sentences = read_corpus_file(args.corpus)
        if args.limit is not None:
            sentences = sentences[: max(args.limit, 0)]
        store = CorpusStore(args.store)
        model = load_model(args.model)

        def progress(done: int, total: int, rate: float, left: float) -> None:
            if not args.quiet:
                print(
                    f"\r{done}/{total} sentences  {rate:.1f}/s  {left:.0f} s left   ",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )

        result = run_corpus(
            model,
            sentences,
            max_tokens=args.max_tokens,
            store=store,
            progress=progress,
            batch_size=args.batch_size,
            mode=args.mode,
            ray_address=args.ray_address,
            workers=args.workers,
        )
    except AtlasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(file=sys.stderr)
    labelled = result.head_table.query("labels != ''")
    print(
        f"{result.model_name}: {result.done}/{result.total} sentences, mode {result.mode}, "
        f"max {result.max_tokens} tokens, {result.truncated} truncated, "
        f"{result.seconds:.1f} s; run {result.run_id} in {result.store_path}"
    )
    for row in labelled.itertuples(index=False):
        print(f"  layer {row.layer} head {row.head}: {row.labels}")
    store.release()  # at once, not when the linger timer would: the process is ending
    return 0


if __name__ == "__main__":
    sys.exit(main())
