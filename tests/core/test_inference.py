"""`core.inference.encode` under concurrency: every thread gets its own text, cut to the cap.

A fast tokenizer keeps its truncation setting on the shared Rust object, and every call sets
it: one visitor's "count the tokens" call (`truncation=False`) landing between another's
"truncate to 256" and its encode returned that visitor's text untruncated. On a public server
(issue 12) a stored per-method result then had 308 queries beside the page's 256 tokens, and
the Attention page raised for one of eight concurrent visitors.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.inference import encode
from core.models import load_model

CAP = 24
THREADS = 8
CALLS = 400


@pytest.mark.filterwarnings("ignore::core.errors.TruncationWarning")
def test_concurrent_encodes_each_keep_their_own_truncation(tiny_model_path):
    model = load_model(str(tiny_model_path("bert")))
    model = dataclasses.replace(model, max_length=CAP)
    # Texts below and above the cap, alternating: the short ones switch truncation off.
    texts = [" ".join(["word"] * (4 if i % 2 else 60)) + f" {i}" for i in range(CALLS)]
    expected = [len(encode(model, text).tokens) for text in texts]  # one at a time
    assert max(expected) == CAP and min(expected) < CAP  # cut and whole texts, alternating

    def length(i: int) -> int:
        return len(encode(model, texts[i]).inputs["input_ids"][0])

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        lengths = list(pool.map(length, range(CALLS)))

    wrong = [(i, n) for i, n in enumerate(lengths) if n != expected[i]]
    assert not wrong, f"{len(wrong)} of {CALLS} encodes ignored their own truncation: {wrong[:5]}"
