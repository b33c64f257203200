"""What a checkpoint can do, which decides the views and predictions offered."""

from __future__ import annotations

from enum import Enum


class ModelKind(str, Enum):
    """What a checkpoint can do, which decides the views and predictions offered."""

    MASKED_LM = "masked-lm"
    ENCODER = "encoder"
    CAUSAL_LM = "causal-lm"
    ENCODER_DECODER = "encoder-decoder"
