"""What the model-reading methods share: one pass with hidden states, row norms, chaining."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from core.architectures import Layer, require_architecture
from core.errors import AtlasError, ComputationCancelled, TruncationWarning
from core.families.layers import SelfStackPass, self_stack_pass
from core.inference import Encoded, encode
from core.methods.base import MethodRequest, Progress


@dataclass(frozen=True, eq=False)
class SelfStackReading:
    """The request's input re-encoded, its layers' adapters, and one pass with hidden states."""

    encoded: Encoded
    layers: list[Layer]
    run: SelfStackPass

    def layer_input(self, index: int) -> tuple[Layer, torch.Tensor, torch.Tensor]:
        """(layer `index`'s adapter, its input `[n, d]`, its attention `[H, n, n]`), both in
        the adapter's compute dtype (float32, or float64 for a float64 model)."""
        layer = self.layers[index]
        hidden, attentions = self.run.hidden_states[index], self.run.attentions[index]
        return layer, hidden.to(layer.dtype), attentions.to(layer.dtype)


def read_self_stack(request: MethodRequest, what: str) -> SelfStackReading:
    """Encode the request's text again and run the model once with hidden states.

    The tokens must be those of `request.result` (the attention pass the page shows); a result
    extended by generation has more tokens than its text and is refused. A model without an
    architecture adapter is refused with a message naming `what` (the method's name).
    """
    architecture = require_architecture(request.model, what)
    result = request.result
    with warnings.catch_warnings():
        # run_attention warned about truncation already for this very text.
        warnings.simplefilter("ignore", TruncationWarning)
        encoded = encode(request.model, result.text, result.text_pair)
    if len(encoded.tokens) != len(result.tokens):
        raise AtlasError(
            "This method reads the model on the text as typed; the shown tokens differ from "
            "it (e.g. generated tokens). Analyse the text without generation."
        )
    run = self_stack_pass(request.model, encoded.inputs)
    return SelfStackReading(encoded, architecture.layers, run)


def normalize_rows(scores: np.ndarray) -> np.ndarray:
    """Each row `[..., n]` divided by its sum; rows summing to 0 stay 0."""
    totals = scores.sum(axis=-1, keepdims=True)
    return np.divide(scores, totals, out=np.zeros_like(scores), where=totals != 0)


def chain_layers(per_layer: np.ndarray) -> np.ndarray:
    """Rollout without an added residual `[layers, n, n]`: R_0 = C_0, R_l = C_l R_(l-1).

    The contribution methods (ALTI, value zeroing) already include the residual in each
    layer's matrix, so their authors chain the matrices as they are.
    """
    chained = np.empty_like(per_layer, dtype=np.float64)
    chained[0] = per_layer[0]
    for layer in range(1, per_layer.shape[0]):
        chained[layer] = per_layer[layer] @ chained[layer - 1]
    return chained


def row_chunks(n: int, row_width: int, budget: int = 1 << 22) -> list[range]:
    """Ranges of rows such that one chunk of `[rows, row_width]` floats stays under `budget`."""
    size = max(1, budget // max(1, row_width))
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def report(progress: Progress | None, done: int, total: int, what: str) -> None:
    """Call `progress`; raise `ComputationCancelled` when it returns False."""
    if progress is not None and progress(done, total) is False:
        raise ComputationCancelled(f"{what} was stopped before it finished.")


def as_float64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(torch.float64).cpu().numpy()
