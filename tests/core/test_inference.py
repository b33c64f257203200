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


@pytest.mark.parametrize(
    "failure",
    [
        "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory",
        "Invalid buffer size: 45.00 GiB",
        "Storage size calculation overflowed with sizes=[4611686018427387904]",
        "CUDA out of memory. Tried to allocate 2.00 GiB",
    ],
)
def test_every_allocator_failure_is_a_memory_error_saying_what_to_lower(tiny_model_path, failure):
    from core.errors import NotEnoughMemoryError
    from core.inference import guarded

    model = load_model(str(tiny_model_path("llama")))
    expected = pytest.raises(NotEnoughMemoryError, match=r"4,096 tokens.*fewer tokens")
    with expected as caught, guarded(model, 4096):
        raise RuntimeError(failure)
    assert "may not be a text model" not in str(caught.value)


def test_a_real_allocation_too_large_is_a_memory_error(tiny_model_path):
    import torch

    from core.errors import NotEnoughMemoryError
    from core.inference import guarded

    model = load_model(str(tiny_model_path("llama")))
    with pytest.raises(NotEnoughMemoryError), guarded(model, 100):
        torch.empty(2**62, dtype=torch.float32)  # torch's own message, whatever its wording
