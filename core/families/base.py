"""The interface every model family implements, and the registry that picks one for a config.

A family is everything that differs between *kinds* of transformer (which head a checkpoint
was saved with): how a checkpoint is recognised, which `transformers` auto class loads it, how
many layers and heads it has, how one forward pass is run, and which attention stacks that pass
yields. Everything downstream asks the family instead of branching on the model kind, so adding
a family is one adapter module and its tests. How each layer of an *architecture* computes
(projections, norms, rotary positions, masks, the unembedding) is the other axis:
`core.architectures`. `load_model` stores the family it detected on `LoadedModel.family`.

Stacks are named by what they are:

* ``"self"``: the self-attention over the input text (an encoder's, a causal LM's, or an
  encoder-decoder's encoder), queries and keys the text's tokens;
* ``"decoder_self"``: an encoder-decoder's decoder self-attention over the target tokens;
* ``"cross"``: an encoder-decoder's cross attention, target tokens (queries) × text tokens
  (keys).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from core.errors import UnsupportedModelError
from core.kinds import ModelKind
from core.loading_lock import LOADING_LOCK

SELF = "self"
DECODER_SELF = "decoder_self"
CROSS = "cross"
STACKS = (SELF, DECODER_SELF, CROSS)
"""Every stack name a family can yield, in display order."""


@dataclass(frozen=True)
class StackSpec:
    """One attention stack a family yields: `[layers, heads, queries, keys]`."""

    name: str
    label: str
    """Short name for a control, e.g. "Encoder self-attention"."""
    description: str
    """One sentence for people: who attends to whom."""
    causal: bool
    """Queries see only earlier keys: the upper triangle is not data."""
    square: bool
    """Queries and keys are the same tokens, so token-to-token methods (rollout, flow) apply."""


@dataclass(frozen=True)
class Passes:
    """What one forward pass of a family returns, still as tensors.

    `attentions[stack]` is a tuple of `[1, heads, q, k]` tensors, one per layer; `logits` is
    `[1, seq, vocab]` for models with a language-model head (the decoder's for seq2seq).
    """

    attentions: Mapping[str, tuple[torch.Tensor, ...]]
    logits: torch.Tensor | None
    raw: Any
    """The `transformers` output object, for methods that need more (hidden states)."""


class Family(ABC):
    """How one kind of model is recognised, loaded and run."""

    kind: ClassVar[ModelKind]
    auto_class_name: ClassVar[str]
    """Name of the `transformers` auto class that loads a checkpoint of this family."""
    stacks: ClassVar[tuple[StackSpec, ...]]
    layer_attributes: ClassVar[tuple[str, ...]] = ("num_hidden_layers", "n_layer", "num_layers")
    head_attributes: ClassVar[tuple[str, ...]] = ("num_attention_heads", "n_head", "num_heads")

    # ----------------------------------------------------------------- recognising a config
    @abstractmethod
    def claims_architecture(self, architecture: str) -> bool:
        """Whether a checkpoint saved as `architecture` (e.g. "BertForMaskedLM") is ours."""

    def claims_config(self, config: Any) -> bool:
        """Whether a config without a telling `architectures` entry is ours (flags only)."""
        return False

    def claims_model_type(self, model_type: str) -> bool:
        """Last resort for configs with neither architectures nor flags."""
        return False

    # ----------------------------------------------------------------- loading
    def auto_class(self) -> Any:
        with LOADING_LOCK:  # a lazy transformers import: see LOADING_LOCK
            import transformers

            return getattr(transformers, self.auto_class_name)

    def layer_count(self, config: Any) -> int:
        return _count(config, self.layer_attributes, "layers")

    def head_count(self, config: Any) -> int:
        return _count(config, self.head_attributes, "heads")

    # ----------------------------------------------------------------- running
    @abstractmethod
    def run(
        self,
        network: torch.nn.Module,
        inputs: Mapping[str, torch.Tensor],
        decoder_input_ids: torch.Tensor | None = None,
        **options: Any,
    ) -> Passes:
        """One forward pass returning every stack's attention (called by `core.inference`).

        `options` are passed to the network (`output_hidden_states=True`, `inputs_embeds` …).
        """

    def self_attention_root(self, network: torch.nn.Module) -> torch.nn.Module:
        """The module tree whose attention modules make the "self" stack (hooks go here)."""
        return network

    def stack_spec(self, name: str) -> StackSpec:
        for spec in self.stacks:
            if spec.name == name:
                return spec
        raise UnsupportedModelError(
            f"A {self.kind.value} model has no '{name}' attention; it has "
            f"{', '.join(s.name for s in self.stacks)}."
        )


def _count(config: Any, names: tuple[str, ...], what: str) -> int:
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in names:
        value = getattr(text_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise UnsupportedModelError(f"Cannot tell how many {what} this model has.")
