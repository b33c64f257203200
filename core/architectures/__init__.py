"""Architecture adapters: one module per architecture, one registry that picks them.

A model's *kind* (`core.families`: masked LM, causal LM, encoder, encoder-decoder) says which
head it has and how it runs; its *architecture* (here) says how one layer computes. The
contribution methods, the logit lens and the corpus global view read the `Architecture` stored
on `LoadedModel.architecture`, never a model type. Models whose layers no adapter claims keep
raw attention, rollout and flow; the other views say what they need (`require_architecture`).

Adding an architecture (see docs/architectures.md): one module with a `Layer` subclass (how to
read the layer's modules) and an `Architecture` subclass (which layer classes it claims, the
final norm and the head), `register(TheArchitecture)`, a tiny checkpoint in
tests/tiny_models.py, and the shared suite tests/core/architectures/test_adapters.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from core.architectures.albert import Albert
from core.architectures.bart import Bart
from core.architectures.base import (
    Architecture,
    Layer,
    Norm,
    Projection,
    apply_rotary,
    compute_dtype,
)
from core.architectures.bert import Bert
from core.architectures.distilbert import DistilBert
from core.architectures.gemma2 import Gemma2
from core.architectures.gemma3 import Gemma3
from core.architectures.gpt2 import Gpt2
from core.architectures.llama import Llama
from core.architectures.mistral import Mistral
from core.architectures.phi3 import Phi3
from core.architectures.qwen2 import Qwen2
from core.architectures.qwen3 import Qwen3
from core.architectures.rotary import RotaryDecoder, RotaryDecoderLayer
from core.architectures.t5 import T5
from core.errors import UnsupportedModelError

if TYPE_CHECKING:
    from core.models import LoadedModel

_REGISTRY: list[type[Architecture]] = [
    Bert,
    Albert,
    DistilBert,
    Gpt2,
    Bart,
    T5,
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma2,
    Gemma3,
    Phi3,
]


def register(architecture: type[Architecture]) -> type[Architecture]:
    """Add an adapter (usable as a class decorator). Later registrations are tried first, so
    an adapter for a subclass of a known layer class can take it over."""
    if architecture not in _REGISTRY:
        _REGISTRY.append(architecture)
    return architecture


def unregister(architecture: type[Architecture]) -> None:
    """Remove an adapter added by `register` (tests that register a toy architecture)."""
    if architecture in _REGISTRY:
        _REGISTRY.remove(architecture)


def registered() -> tuple[type[Architecture], ...]:
    """Every registered adapter class, in the order they were registered."""
    return tuple(_REGISTRY)


def supported_labels() -> str:
    return ", ".join(architecture.label for architecture in _REGISTRY)


def detect_architecture(
    network: torch.nn.Module, root: torch.nn.Module | None = None
) -> Architecture | None:
    """The adapter for `network` (its self stack under `root`, the whole network by default),
    or None when no registered adapter claims its layers."""
    root = network if root is None else root
    modules = list(root.modules())
    for architecture in reversed(_REGISTRY):
        if any(architecture.claims(module) for module in modules):
            try:
                return architecture(network, root)
            except UnsupportedModelError:
                return None  # e.g. ALBERT with several layers per group
    return None


def require_architecture(model: LoadedModel, what: str) -> Architecture:
    """`model.architecture`, or `UnsupportedModelError` saying in one line that `what` needs
    an architecture adapter (and which exist)."""
    architecture = model.architecture
    if architecture is None or len(architecture.layers) != model.num_layers:
        kind = model.model_type or type(model.model).__name__
        raise UnsupportedModelError(
            f"{what} reads each layer's projections and norms, and Attention Atlas has no "
            f"adapter for {model.name}'s architecture ({kind}). Supported: {supported_labels()}."
        )
    return architecture


def unsupported_reason(model: LoadedModel) -> str | None:
    """Why the model-reading methods cannot read `model`, or None when they can."""
    try:
        require_architecture(model, "This method")
    except UnsupportedModelError as error:
        return str(error)
    return None


__all__ = [
    "T5",
    "Albert",
    "Architecture",
    "Bart",
    "Bert",
    "DistilBert",
    "Gemma2",
    "Gemma3",
    "Gpt2",
    "Layer",
    "Llama",
    "Mistral",
    "Norm",
    "Phi3",
    "Projection",
    "Qwen2",
    "Qwen3",
    "RotaryDecoder",
    "RotaryDecoderLayer",
    "apply_rotary",
    "compute_dtype",
    "detect_architecture",
    "register",
    "registered",
    "require_architecture",
    "supported_labels",
    "unregister",
    "unsupported_reason",
]
