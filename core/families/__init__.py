"""Model families behind one interface: detection, loading, the forward pass, the stacks.

`FAMILIES` is the registry, in the order configs are matched (most specific first). Adding a
family means one module with a `Family` subclass, an entry here, and its tests
(tests/core/families/).
"""

from __future__ import annotations

from typing import Any

from core.families.base import (
    CROSS,
    DECODER_SELF,
    SELF,
    STACKS,
    Family,
    Passes,
    StackSpec,
)
from core.families.seq2seq import EncoderDecoderFamily
from core.families.single_stack import CausalLMFamily, EncoderFamily, MaskedLMFamily
from core.kinds import ModelKind

FAMILIES: tuple[Family, ...] = (
    EncoderDecoderFamily(),
    MaskedLMFamily(),
    CausalLMFamily(),
    EncoderFamily(),
)
"""Every family, most specific first; `EncoderFamily` takes any other architecture."""

_BY_KIND = {family.kind: family for family in FAMILIES}


def family_for_kind(kind: ModelKind) -> Family:
    """The family adapter of a loaded model's kind."""
    return _BY_KIND[kind]


def detect_family(config: Any) -> Family:
    """The family of a checkpoint from its config (a few KB, no weights).

    `architectures` records the head the weights were trained with, so it decides first, in the
    order it lists them (every family is asked, encoder-kind ones included); then the config's
    flags (`is_encoder_decoder`, `is_decoder`); a config with architectures no family claims is
    an encoder (`EncoderFamily`); one with none at all is matched by its model type. The family
    found is stored on `LoadedModel.family`.
    """
    if FAMILIES[0].claims_config(config):  # encoder-decoder flags outrank architectures
        return FAMILIES[0]
    architectures = list(getattr(config, "architectures", None) or [])
    for architecture in architectures:
        for family in FAMILIES:
            if family.claims_architecture(architecture):
                return family
    for family in FAMILIES:
        if family.claims_config(config):
            return family
    if architectures:
        return _BY_KIND[ModelKind.ENCODER]
    model_type = getattr(config, "model_type", "")
    for family in FAMILIES:
        if family.claims_model_type(model_type):
            return family
    return _BY_KIND[ModelKind.ENCODER]


__all__ = [
    "CROSS",
    "DECODER_SELF",
    "FAMILIES",
    "SELF",
    "STACKS",
    "CausalLMFamily",
    "EncoderDecoderFamily",
    "EncoderFamily",
    "Family",
    "MaskedLMFamily",
    "Passes",
    "StackSpec",
    "detect_family",
    "family_for_kind",
]
