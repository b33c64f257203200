"""Families with one self-attention stack: masked LMs, plain encoders and causal LMs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from core.families.base import SELF, Family, Passes, StackSpec
from core.kinds import ModelKind
from core.loading_lock import LOADING_LOCK

_BIDIRECTIONAL = StackSpec(
    SELF,
    "Self-attention",
    "Every token attends to every token of the input.",
    causal=False,
    square=True,
)
_CAUSAL = StackSpec(
    SELF,
    "Self-attention",
    "Every token attends to itself and the tokens before it.",
    causal=True,
    square=True,
)


def _auto_mapping(name: str) -> Mapping[str, str]:
    """One of transformers' model-type → class-name tables (e.g. which types have a masked-LM
    class), for configs that name no architecture."""
    with LOADING_LOCK:  # a lazy transformers import: see LOADING_LOCK
        from transformers.models.auto import modeling_auto

        return getattr(modeling_auto, name)


class _SingleStack(Family):
    def run(
        self,
        network: torch.nn.Module,
        inputs: Mapping[str, torch.Tensor],
        decoder_input_ids: torch.Tensor | None = None,
        **options: Any,
    ) -> Passes:
        output = network(**inputs, output_attentions=True, **options)
        return Passes({SELF: output.attentions}, getattr(output, "logits", None), output)


class MaskedLMFamily(_SingleStack):
    """BERT, RoBERTa, DistilBERT, ALBERT … saved with a trained masked-word head."""

    kind: ClassVar[ModelKind] = ModelKind.MASKED_LM
    auto_class_name: ClassVar[str] = "AutoModelForMaskedLM"
    stacks: ClassVar[tuple[StackSpec, ...]] = (_BIDIRECTIONAL,)

    def claims_architecture(self, architecture: str) -> bool:
        return architecture.endswith(("ForMaskedLM", "ForPreTraining"))

    def claims_model_type(self, model_type: str) -> bool:
        return model_type in _auto_mapping("MODEL_FOR_MASKED_LM_MAPPING_NAMES")


class CausalLMFamily(_SingleStack):
    """GPT-2 and other decoder-only language models: causal self-attention, next token."""

    kind: ClassVar[ModelKind] = ModelKind.CAUSAL_LM
    auto_class_name: ClassVar[str] = "AutoModelForCausalLM"
    stacks: ClassVar[tuple[StackSpec, ...]] = (_CAUSAL,)

    def claims_architecture(self, architecture: str) -> bool:
        return architecture.endswith(("ForCausalLM", "LMHeadModel")) and not architecture.endswith(
            "WithLMHeadModel"
        )

    def claims_config(self, config: Any) -> bool:
        return bool(getattr(config, "is_decoder", False))

    def claims_model_type(self, model_type: str) -> bool:
        return model_type in _auto_mapping("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES")


class EncoderFamily(_SingleStack):
    """Encoders without a usable prediction head (sentence encoders such as MiniLM)."""

    kind: ClassVar[ModelKind] = ModelKind.ENCODER
    auto_class_name: ClassVar[str] = "AutoModel"
    stacks: ClassVar[tuple[StackSpec, ...]] = (_BIDIRECTIONAL,)

    def claims_architecture(self, architecture: str) -> bool:
        # Claims nothing by name: `detect_family` falls back to it for any architecture no
        # family claims (its base model is an encoder we can read).
        return False
