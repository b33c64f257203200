"""One forward pass of a model's "self" stack with hidden states, whatever its architecture.

What each layer computes (projections, norms, re-running a layer) is architecture knowledge
and lives in `core.architectures`; this module only runs the kind's forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.errors import UnsupportedModelError
from core.families.base import SELF, Passes
from core.inference import guarded
from core.models import LoadedModel


@dataclass(frozen=True, eq=False)
class SelfStackPass:
    """The tensors one pass yields for the self stack, batch dimension dropped, in the model's
    dtype.

    `hidden_states[l]` `[n, d]` is layer l's input (l = 0: the embeddings); the last entry is
    what the model returns after its last layer (GPT-2, T5 and the rotary decoders apply their
    final norm to it). `attentions[l]` `[H, n, n]`; `logits` `[n, vocab]` or None.
    """

    hidden_states: tuple[torch.Tensor, ...]
    attentions: tuple[torch.Tensor, ...]
    logits: torch.Tensor | None


def self_stack_pass(model: LoadedModel, inputs: dict[str, torch.Tensor]) -> SelfStackPass:
    """Run `model` once on `inputs` with hidden states, without gradients.

    An encoder-decoder model runs its encoder only (the self stack).
    """
    with guarded(model), torch.inference_mode():
        passes: Passes = model.family.run(model.model, inputs, None, output_hidden_states=True)
    raw = passes.raw
    hidden = getattr(raw, "hidden_states", None) or getattr(raw, "encoder_hidden_states", None)
    attentions = passes.attentions[SELF]
    if not hidden or not attentions or any(a is None for a in attentions):
        raise UnsupportedModelError(f"{model.name} did not return its hidden states and attention.")
    logits = None if passes.logits is None else passes.logits[0]
    return SelfStackPass(tuple(h[0] for h in hidden), tuple(a[0] for a in attentions), logits)
