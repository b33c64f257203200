"""Attention Atlas core: models, tokens, attention, rollout/flow, predictions, charts.

Everything here is UI-free and importable from a notebook::

    from core import load_model, run_attention, EMBEDDED_MODEL
    result = run_attention(load_model(EMBEDDED_MODEL), "The cat sat on the mat.")

A loaded model carries two adapters: `model.family` (its kind: which head, how a pass runs,
which attention stacks; `core.families`) and `model.architecture` (how each layer computes:
projections, norms, masks, soft-caps, the final norm and head; `core.architectures`, None for
architectures no adapter claims). `register_architecture` adds an adapter.

Long inputs: `run_attention` keeps the self-attention as captured queries, keys and softmax
normalisers, so at thousands of tokens read it in pieces, each exact in float32::

    result.row(layer, head, query)               # [keys], NaN where the model computes nothing
    result.tile(layer, head, rows, cols)         # [len(rows), len(cols)]; rows, cols are ranges
    result.computed(layer, rows, cols)           # bool: causality and sliding windows
    result.pooled(layer, head, 256, "max")       # overview grid and its block edges
    result.statistics()                          # per-head blockwise summaries
    result.nbytes                                # what the result holds

Long-context heads: `sink_profile(result)` (first-token share, sink heads, local share),
`retrieval_scores(model, haystack, needle, question)` (Wu et al.'s copy rule, teacher-forced)
and `ablate_heads(model, text, heads)` (zero heads, see the next-token probability move); see
docs/long-context.md.

`result.attentions` (the whole `[layers, heads, n, n]` array) is built within a budget
(`DENSE_BUDGET_BYTES`) and raises `AttentionTooLargeError` beyond it.
"""

from core.ablation import ablate_answer, ablate_heads, ablation_controls
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
from core.display_matrix import drop_positions, merge_groups, without_first_token
from core.errors import (
    AtlasError,
    AttentionTooLargeError,
    ComputationCancelled,
    DeviceUnavailableError,
    EmptyReplacementError,
    EmptyTextError,
    FlowCancelled,
    InputTooLongError,
    InvalidAttentionError,
    InvalidModelNameError,
    InvalidSelectionError,
    MethodTooLongError,
    MethodUnsupportedError,
    ModelLoadError,
    ModelNotFoundError,
    NeuronViewUnsupportedError,
    NoMaskedLMHeadError,
    NoMaskError,
    NotAModelError,
    NotEnoughMemoryError,
    OfflineError,
    PositionOutOfRangeError,
    TruncationWarning,
    UnsupportedModelError,
)
from core.exact import DENSE_BUDGET_BYTES, CapturedStack, DenseStack, pooling_edges
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
from core.long_rollout import rollout_rows
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
from core.neuron import NeuronView, neuron_view, neuron_view_of, supports_neuron_view
from core.predictions import Prediction, predict_masked
from core.retrieval import needle_input, retrieval_scores
from core.rollout import attention_rollout, residual_attention, row_sum_tolerance
from core.row_stats import ROW_STATISTICS, STATISTICS, row_statistics
from core.sinks import SINK_COLUMNS, sink_profile
from core.tokens import Token, word_groups
from core.version import VERSION

__version__ = VERSION

__all__ = [
    "DENSE_BUDGET_BYTES",
    "EMBEDDED_MODEL",
    "FULL_FLOW_DEFAULT_MAX_TOKENS",
    "PRESETS",
    "ROW_STATISTICS",
    "SINK_COLUMNS",
    "STACKS",
    "STATISTICS",
    "STAT_DESCRIPTIONS",
    "Architecture",
    "AtlasError",
    "AttentionResult",
    "AttentionTooLargeError",
    "Budget",
    "CapturedStack",
    "Comparison",
    "ComputationCancelled",
    "Cost",
    "DenseStack",
    "DeviceUnavailableError",
    "EmptyReplacementError",
    "EmptyTextError",
    "Family",
    "FlowCancelled",
    "InputTooLongError",
    "InvalidAttentionError",
    "InvalidModelNameError",
    "InvalidSelectionError",
    "Layer",
    "LoadedModel",
    "MaskPair",
    "Method",
    "MethodRequest",
    "MethodResult",
    "MethodTooLongError",
    "MethodUnsupportedError",
    "ModelKind",
    "ModelLoadError",
    "ModelNotFoundError",
    "NeuronView",
    "NeuronViewUnsupportedError",
    "NoMaskError",
    "NoMaskedLMHeadError",
    "NotAModelError",
    "NotEnoughMemoryError",
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
    "ablate_answer",
    "ablate_heads",
    "ablation_controls",
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
    "needle_input",
    "neuron_view",
    "neuron_view_of",
    "pooling_edges",
    "predict_masked",
    "predict_next",
    "register_architecture",
    "require_architecture",
    "residual_attention",
    "retrieval_scores",
    "rollout_rows",
    "route_contributions",
    "row_statistics",
    "row_sum_tolerance",
    "run_attention",
    "run_method",
    "select_heads",
    "sink_profile",
    "supports_neuron_view",
    "unregister_architecture",
    "unsupported_reason",
    "without_first_token",
    "word_groups",
]
