"""Attention Atlas core: models, tokens, attention, rollout/flow, predictions, charts.

Everything here is UI-free and importable from a notebook::

    from core import load_model, run_attention, EMBEDDED_MODEL
    result = run_attention(load_model(EMBEDDED_MODEL), "The cat sat on the mat.")
"""

from core.attention import (
    STACKS,
    AttentionResult,
    generate_with_attention,
    predict_next,
    run_attention,
)
from core.compare import Comparison, WordAlignment, align_words, compare_replacement
from core.errors import (
    AtlasError,
    EmptyReplacementError,
    EmptyTextError,
    InvalidModelNameError,
    ModelLoadError,
    ModelNotFoundError,
    NoMaskedLMHeadError,
    NoMaskError,
    NotAModelError,
    OfflineError,
    PositionOutOfRangeError,
    TruncationWarning,
    UnsupportedModelError,
)
from core.export import attention_csv, attention_data, attention_json
from core.flow import ComputationCancelled, FlowCancelled, attention_flow
from core.head_stats import STAT_DESCRIPTIONS, head_statistics
from core.models import EMBEDDED_MODEL, PRESETS, LoadedModel, ModelKind, Preset, load_model
from core.neuron import NeuronView, NeuronViewUnsupportedError, neuron_view, supports_neuron_view
from core.predictions import Prediction, predict_masked
from core.rollout import (
    InvalidAttentionError,
    InvalidSelectionError,
    attention_rollout,
    residual_attention,
)
from core.tokens import Token, word_groups
from core.transforms import drop_positions, mean_of_heads, merge_groups, select_heads

__all__ = [
    "EMBEDDED_MODEL",
    "PRESETS",
    "STACKS",
    "STAT_DESCRIPTIONS",
    "AtlasError",
    "AttentionResult",
    "Comparison",
    "ComputationCancelled",
    "EmptyReplacementError",
    "EmptyTextError",
    "FlowCancelled",
    "InvalidAttentionError",
    "InvalidModelNameError",
    "InvalidSelectionError",
    "LoadedModel",
    "ModelKind",
    "ModelLoadError",
    "ModelNotFoundError",
    "NeuronView",
    "NeuronViewUnsupportedError",
    "NoMaskError",
    "NoMaskedLMHeadError",
    "NotAModelError",
    "OfflineError",
    "PositionOutOfRangeError",
    "Prediction",
    "Preset",
    "Token",
    "TruncationWarning",
    "UnsupportedModelError",
    "WordAlignment",
    "align_words",
    "attention_csv",
    "attention_data",
    "attention_flow",
    "attention_json",
    "attention_rollout",
    "compare_replacement",
    "drop_positions",
    "generate_with_attention",
    "head_statistics",
    "load_model",
    "mean_of_heads",
    "merge_groups",
    "neuron_view",
    "predict_masked",
    "predict_next",
    "residual_attention",
    "run_attention",
    "select_heads",
    "supports_neuron_view",
    "word_groups",
]
