"""Attention Atlas core: models, tokens, attention, rollout/flow, predictions, charts.

Everything here is UI-free and importable from a notebook::

    from core import load_model, run_attention, EMBEDDED_MODEL
    result = run_attention(load_model(EMBEDDED_MODEL), "The cat sat on the mat.")

A loaded model carries two adapters: `model.family` (its kind: which head, how a pass runs,
which attention stacks; `core.families`) and `model.architecture` (how each layer computes:
projections, norms, masks, soft-caps, the final norm and head; `core.architectures`, None for
architectures no adapter claims). `register_architecture` adds an adapter.
"""

from core.agreement import explanation_agreement, leave_one_out
from core.architectures import (
    Architecture,
    Layer,
    detect_architecture,
    require_architecture,
    unsupported_reason,
)
from core.architectures import register as register_architecture
from core.architectures import unregister as unregister_architecture
from core.attention import (
    AttentionResult,
    generate_with_attention,
    predict_next,
    run_attention,
)
from core.compare import Comparison, MaskPair, WordAlignment, align_words, compare_replacement
from core.costs import Budget, Cost
from core.display_matrix import drop_positions, merge_groups
from core.errors import (
    AtlasError,
    ComputationCancelled,
    EmptyReplacementError,
    EmptyTextError,
    FlowCancelled,
    InvalidAttentionError,
    InvalidModelNameError,
    InvalidSelectionError,
    MethodUnsupportedError,
    ModelLoadError,
    ModelNotFoundError,
    NeuronViewUnsupportedError,
    NoMaskedLMHeadError,
    NoMaskError,
    NotAModelError,
    OfflineError,
    PositionOutOfRangeError,
    TruncationWarning,
    UnsupportedModelError,
)
from core.export import (
    Provenance,
    attention_csv,
    attention_data,
    attention_json,
    export_file_name,
)
from core.families import STACKS, Family, StackSpec, detect_family, family_for_kind
from core.flow import FULL_FLOW_DEFAULT_MAX_TOKENS, attention_flow, full_flow_is_fast
from core.graph import (
    RouteContributions,
    information_flow_graph,
    layer_share_graph,
    route_contributions,
)
from core.head_stats import STAT_DESCRIPTIONS, head_statistics
from core.kinds import ModelKind
from core.layer_views import mean_of_heads, select_heads
from core.lens import logit_lens
from core.methods import (
    Method,
    MethodRequest,
    MethodResult,
    compute_method,
    get_method,
    list_methods,
    method_names,
    run_method,
)
from core.methods.alti import compute_alti
from core.models import EMBEDDED_MODEL, PRESETS, LoadedModel, Preset, load_model
from core.neuron import NeuronView, neuron_view, supports_neuron_view
from core.predictions import Prediction, predict_masked
from core.rollout import attention_rollout, residual_attention
from core.tokens import Token, word_groups
from core.version import VERSION

__version__ = VERSION

__all__ = [
    "EMBEDDED_MODEL",
    "FULL_FLOW_DEFAULT_MAX_TOKENS",
    "PRESETS",
    "STACKS",
    "STAT_DESCRIPTIONS",
    "Architecture",
    "AtlasError",
    "AttentionResult",
    "Budget",
    "Comparison",
    "ComputationCancelled",
    "Cost",
    "EmptyReplacementError",
    "EmptyTextError",
    "Family",
    "FlowCancelled",
    "InvalidAttentionError",
    "InvalidModelNameError",
    "InvalidSelectionError",
    "Layer",
    "LoadedModel",
    "MaskPair",
    "Method",
    "MethodRequest",
    "MethodResult",
    "MethodUnsupportedError",
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
    "Provenance",
    "RouteContributions",
    "StackSpec",
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
    "compute_alti",
    "compute_method",
    "detect_architecture",
    "detect_family",
    "drop_positions",
    "explanation_agreement",
    "export_file_name",
    "family_for_kind",
    "full_flow_is_fast",
    "generate_with_attention",
    "get_method",
    "head_statistics",
    "information_flow_graph",
    "layer_share_graph",
    "leave_one_out",
    "list_methods",
    "load_model",
    "logit_lens",
    "mean_of_heads",
    "merge_groups",
    "method_names",
    "neuron_view",
    "predict_masked",
    "predict_next",
    "register_architecture",
    "require_architecture",
    "residual_attention",
    "route_contributions",
    "run_attention",
    "run_method",
    "select_heads",
    "supports_neuron_view",
    "unregister_architecture",
    "unsupported_reason",
    "word_groups",
]
