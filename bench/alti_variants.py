"""How far ALTI as released is from ALTI as defined (`core.compute_alti`, both variants).

The released code (mt-upc/transformer-contributions) measures distances with torch's
`pairwise_distance`, which adds ε = 1e-6 to every coordinate; the definition does not. Prints,
per model and length, the largest |difference| of a per-layer entry, the mean entry (1/n), the
largest difference of the rollout, and the largest share a row gives to later tokens of a
causal model in the released code (0 in the definition). No timing: run anywhere.

    python bench/alti_variants.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import core
from core.methods.alti import DEFINITION, RELEASED

PHRASE = (
    "the researchers visualized attention patterns quickly while the students compared every "
    "layer of the model with the tokens it read before and after lunch"
)
WORDS = PHRASE.split()


def text_of(model: core.LoadedModel, tokens: int) -> tuple[str, int]:
    """The longest prefix of a repeated phrase with at most `tokens` tokens (special tokens
    included), and its length."""
    best = ("", 0)
    for words in range(1, 4 * tokens):
        text = " ".join(WORDS[i % len(WORDS)] for i in range(words))
        n = len(core.run_attention(model, text).tokens)
        if n > tokens:
            break
        best = (text, n)
    return best


def measure(label: str, model: core.LoadedModel, tokens: int) -> None:
    text, tokens = text_of(model, tokens)
    defined = core.compute_alti(model, text, variant=DEFINITION)
    released = core.compute_alti(model, text, variant=RELEASED)
    entry = np.abs(defined.per_layer - released.per_layer).max()
    rollout = np.abs(defined.rollout - released.rollout).max()
    median = np.median(defined.per_layer[defined.per_layer > 0])
    line = (
        f"{label:<40} n={tokens:<4} per-layer max |Δ| {entry:.2e} (median entry {median:.1e})"
        f"  rollout max |Δ| {rollout:.2e}"
    )
    if model.kind is core.ModelKind.CAUSAL_LM:
        later = np.triu(released.per_layer, k=1).sum(axis=-1).max()
        line += f"  released: largest row share on later tokens {later:.1e}"
    print(line)


def main() -> None:
    minilm = core.load_model(core.EMBEDDED_MODEL)
    for tokens in (16, 128):
        measure(f"{core.EMBEDDED_MODEL}", minilm, tokens)
    from tests.tiny_models import build_tiny_model

    directory = build_tiny_model("gpt2", Path(tempfile.mkdtemp()))
    tiny = core.load_model(str(directory))
    for tokens in (16, 23):
        measure("tiny GPT-2 (tests/tiny_models)", tiny, tokens)


if __name__ == "__main__":
    main()
