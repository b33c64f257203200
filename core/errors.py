"""Typed exceptions raised by `core`.

Every error a person can cause derives from `AtlasError` (a `ValueError`), and its message is
written for that person: the UI shows `str(error)` as is.
"""

from __future__ import annotations


class AtlasError(ValueError):
    """Base class of every input or model error raised by `core`."""


class EmptyTextError(AtlasError):
    """The text is empty, whitespace only, or has nothing the tokenizer can read."""


class NoMaskError(AtlasError):
    """Masked-word prediction was asked for a text without a mask token."""


class NoMaskedLMHeadError(AtlasError):
    """The model has no trained masked-language-model head, so it cannot fill masks."""


class PositionOutOfRangeError(AtlasError, IndexError):
    """A token, word, layer or head index is outside the input or the model."""


class EmptyReplacementError(AtlasError):
    """The replacement word for a comparison is empty or has nothing the tokenizer can read."""


class ModelLoadError(AtlasError):
    """A model could not be loaded (base class of the more specific load errors)."""


class InvalidModelNameError(ModelLoadError):
    """The name is neither an existing local directory nor a valid Hub model id."""


class ModelNotFoundError(ModelLoadError):
    """The Hub has no model under this id (or it is private or gated)."""


class OfflineError(ModelLoadError):
    """The Hub cannot be reached and the model is not in the local cache."""


class NotAModelError(ModelLoadError):
    """A local directory exists but holds no loadable transformer checkpoint."""


class UnsupportedModelError(ModelLoadError):
    """The checkpoint is a model, but not a kind whose attention `core` can show."""


class TruncationWarning(UserWarning):
    """The input was longer than the model's maximum and its end was dropped."""


class InvalidAttentionError(AtlasError):
    """The attention array is not a ``[layers, heads, n, n]`` stack of row-stochastic maps."""


class InvalidSelectionError(AtlasError):
    """A head, token, layer or row index passed alongside the attentions is not usable."""


class ComputationCancelled(AtlasError):
    """A long computation was stopped because its progress callback returned ``False``."""


class FlowCancelled(ComputationCancelled):
    """:func:`core.attention_flow` was stopped by its ``progress`` callback."""


class NeuronViewUnsupportedError(AtlasError):
    """The model's attention is not one whose query and key vectors the neuron view can read."""


class MethodUnsupportedError(AtlasError):
    """An attribution method cannot be computed for this model or stack (the message says why)."""


class UnsafePickleError(ModelLoadError):
    """The checkpoint's pickle weights hold more than tensors, so PyTorch's safe loader refused
    them (opening them fully could run code)."""


class DeviceUnavailableError(ModelLoadError):
    """The device asked for (e.g. "cuda", "mps") does not exist on this machine."""


class InsufficientMemoryError(ModelLoadError):
    """The model and one result would not fit in the memory the machine has available."""


class AttentionTooLargeError(AtlasError):
    """The whole `[layers, heads, q, k]` attention of a long input exceeds the memory budget:
    read rows, tiles or pooled overviews of it instead (the message says how)."""


class MethodTooLongError(AtlasError):
    """A method's arrays at this input's length would exceed its memory budget; the message and
    `max_tokens` say the longest input it accepts on this model."""

    def __init__(self, message: str, max_tokens: int) -> None:
        super().__init__(message)
        self.max_tokens = max_tokens

    def __reduce__(self):  # picklable with its length (a worker process may raise it)
        return type(self), (str(self), self.max_tokens)


class InputTooLongError(AtlasError):
    """An input the library builds (e.g. a needle-in-a-haystack input) is longer than the model
    reads; a deployment's own, lower text limit is `server.errors.TextTooLongError`."""


class NotEnoughMemoryError(AtlasError):
    """The machine ran out of memory during a forward pass or a recomputation; the message says
    what to lower (tokens, layers shown, dtype)."""


class CorpusError(AtlasError):
    """A corpus run cannot go ahead (base class of the corpus errors)."""


class CorpusFileError(CorpusError):
    """An uploaded or named corpus file cannot be read as sentences."""


class EmptyCorpusError(CorpusError):
    """The corpus has no sentences, or a sentence is empty."""


class CorpusStoreError(CorpusError):
    """The corpus result store cannot be opened or written (locked, unwritable, not DuckDB)."""


class ClusterError(CorpusError):
    """A Ray cluster was asked for, but Ray is not installed or the cluster cannot be reached."""


class ProjectionUnavailableError(CorpusError):
    """The 2-D embedding method asked for (UMAP, t-SNE) is not installed or unknown."""


class RunInProgressError(CorpusError):
    """The same corpus run (model, corpus, settings, store) is already going in this process."""
