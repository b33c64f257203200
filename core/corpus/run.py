"""Running a model over a corpus and streaming per-head statistics into the store."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from core.corpus.keys import check_sentences, corpus_hash, run_id
from core.corpus.result import CorpusResult
from core.corpus.statistics import batch_values, check_mode, statistic_descriptions, token_batch
from core.corpus.store import CorpusStore, RunRecord
from core.errors import CorpusError, RunInProgressError, UnsupportedModelError
from core.families import SELF
from core.models import LoadedModel
from core.tokens import Token, build_tokens, tokenize

DEFAULT_BATCH_SIZE = 16
TOP_K = 20
"""Examples kept per layer × head × statistic."""
TYPICAL_SAMPLE = 256
"""Sentences (evenly spaced through the corpus) whose full head profile is kept."""
ORDER_WINDOW = 256
"""Sentences are run in corpus order, sorted by length only within windows of this many: short
batches pad less, and a run stopped part-way has seen an unbiased slice of the corpus."""
MIN_TOKENS = 3
FLUSH_SECONDS = 10.0
"""A run writes its state at most this often (and always when it stops, fails or ends): a
write costs about as much CPU as a batch of short sentences, and a crash loses at most this."""

Progress = Callable[[int, int, float, float], "bool | None"]
"""`progress(done, total, sentences_per_second, seconds_left)`; return False to stop."""


def effective_max_tokens(model: LoadedModel, max_tokens: int) -> int:
    """`max_tokens` capped at what the model reads, validated."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < MIN_TOKENS:
        raise CorpusError(f"Maximum tokens must be a whole number of at least {MIN_TOKENS}.")
    return min(max_tokens, model.max_length)


# --------------------------------------------------------------------------------------------
# Encoding and the batched forward pass.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedSentence:
    tokens: list[Token]
    inputs: dict[str, list[int]]


def encode_sentence(model: LoadedModel, text: str, max_tokens: int) -> EncodedSentence:
    """Tokens and model inputs of one sentence, cut to `max_tokens` (special tokens included)."""
    tokenizer = model.tokenizer
    encoding = tokenize(
        tokenizer,
        text,
        truncation=True,
        max_length=max_tokens,
        return_tensors="np",
        return_offsets_mapping=getattr(tokenizer, "is_fast", False),
        verbose=False,
    )
    tokens = build_tokens(encoding, tokenizer)
    names = set(tokenizer.model_input_names) | {"input_ids", "attention_mask"}
    inputs = {k: encoding[k][0].tolist() for k in encoding if k in names}
    return EncodedSentence(tokens, inputs)


def _pad_value(model: LoadedModel, name: str) -> int:
    if name == "input_ids":
        tokenizer = model.tokenizer
        pad = tokenizer.pad_token_id
        # GPT-2 has no pad token; any id works, the attention mask hides the position.
        return pad if pad is not None else (tokenizer.eos_token_id or 0)
    return 0


def _attention_network(model: LoadedModel) -> torch.nn.Module:
    """The part of the model whose self-attention is studied, without any output head."""
    root = model.family.self_attention_root(model.model)
    if root is not model.model:
        return root  # an encoder-decoder's encoder
    # The base model: an MLM or LM head's vocabulary projection is wasted work here.
    return getattr(root, "base_model", root)


def padded_inputs(
    model: LoadedModel, encoded: Sequence[EncodedSentence]
) -> dict[str, torch.Tensor]:
    """The model's inputs for a batch of sentences, right-padded (positions 0..n-1 per row)."""
    width = max(len(e.tokens) for e in encoded)
    inputs = {}
    for name in encoded[0].inputs:
        pad = _pad_value(model, name)
        rows = [e.inputs[name] + [pad] * (width - len(e.inputs[name])) for e in encoded]
        inputs[name] = torch.tensor(rows, dtype=torch.long, device=model.device)
    inputs["attention_mask"] = torch.tensor(
        [[1] * len(e.tokens) + [0] * (width - len(e.tokens)) for e in encoded],
        dtype=torch.long,
        device=model.device,
    )
    return inputs


def run_network(model: LoadedModel, inputs: dict[str, torch.Tensor], **options) -> object:
    """The self stack's network run on `inputs` with attention (and `options`), no gradients;
    any failure becomes `UnsupportedModelError`."""
    try:
        with torch.inference_mode():
            return _attention_network(model)(**inputs, output_attentions=True, **options)
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise UnsupportedModelError(
            f"{model.name} could not run on the corpus ({type(exc).__name__}: {detail})."
        ) from exc


def forward_batch(model: LoadedModel, encoded: Sequence[EncodedSentence]) -> list[np.ndarray]:
    """One padded forward pass: per layer, float32 attention `[B, H, T, T]` (right padding)."""
    output = run_network(model, padded_inputs(model, encoded))
    attentions = getattr(output, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise UnsupportedModelError(
            f"{model.name} did not return attention weights (its attention implementation "
            "does not expose them)."
        )
    return [a.to(torch.float32).cpu().numpy() for a in attentions]


def process_batch(
    model: LoadedModel, texts: Sequence[str], max_tokens: int, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence statistics of a batch: `values [B, L, H, S]`, `pairs [B, L, H, S, 2]`.

    The pure step shared by the single-process run and the Ray workers.
    """
    encoded = [encode_sentence(model, text, max_tokens) for text in texts]
    attentions = forward_batch(model, encoded)
    tokenizer = model.tokenizer
    batch = token_batch(
        [e.tokens for e in encoded],
        cls_token=tokenizer.cls_token,
        sep_token=tokenizer.sep_token,
        causal=model.family.stack_spec(SELF).causal,
    )
    architecture = model.architecture
    windows = None if architecture is None else [layer.window for layer in architecture.layers]
    return batch_values(attentions, batch, mode, windows)


def processing_order(
    model: LoadedModel, sentences: Sequence[str], max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """`(order, full_lengths)`: the fixed order a run visits sentences in, and token counts.

    The order depends only on the corpus, tokenizer and `max_tokens`, so a resumed run (with
    any batch size, on any number of workers) continues exactly where the last one stopped.
    """
    lengths = np.empty(len(sentences), dtype=np.int64)
    for start in range(0, len(sentences), 1024):
        chunk = list(sentences[start : start + 1024])
        ids = tokenize(model.tokenizer, chunk, truncation=False, verbose=False)["input_ids"]
        lengths[start : start + len(chunk)] = [len(i) for i in ids]
    capped = np.minimum(lengths, max_tokens)
    order = np.concatenate(
        [
            start + np.argsort(capped[start : start + ORDER_WINDOW], kind="stable")
            for start in range(0, len(sentences), ORDER_WINDOW)
        ]
    )
    return order, lengths


# --------------------------------------------------------------------------------------------
# Streaming accumulation.
# --------------------------------------------------------------------------------------------


@dataclass
class Accumulator:
    """Running sums and the bounded top-k of examples, `[L, H, S]` per head and statistic."""

    layers: int
    heads: int
    statistics: tuple[str, ...]
    top_k: int = TOP_K
    count: np.ndarray = field(init=False)
    total: np.ndarray = field(init=False)
    total_sq: np.ndarray = field(init=False)
    top_value: np.ndarray = field(init=False)
    top_sentence: np.ndarray = field(init=False)
    top_pair: np.ndarray = field(init=False)
    changed: np.ndarray = field(init=False)
    """`[L, H, S]` heads whose examples changed since the last write."""

    def __post_init__(self) -> None:
        shape = (self.layers, self.heads, len(self.statistics))
        self.count = np.zeros(shape, dtype=np.int64)
        self.total = np.zeros(shape)
        self.total_sq = np.zeros(shape)
        self.top_value = np.full((*shape, self.top_k), -np.inf)
        self.top_sentence = np.full((*shape, self.top_k), -1, dtype=np.int64)
        self.top_pair = np.full((*shape, self.top_k, 2), -1, dtype=np.int64)
        self.changed = np.zeros(shape, dtype=bool)

    def add(self, indices: np.ndarray, values: np.ndarray, pairs: np.ndarray) -> None:
        """Fold in a batch: `values [B, L, H, S]`, `pairs [B, L, H, S, 2]` of `indices [B]`."""
        present = ~np.isnan(values)
        clean = np.where(present, values, 0.0)
        self.count += present.sum(0)
        self.total += clean.sum(0)
        self.total_sq += (clean * clean).sum(0)

        # Merge the batch into the top-k: largest value first, ties to the earlier sentence.
        batch_value = np.moveaxis(np.where(present, values, -np.inf), 0, -1)  # [L, H, S, B]
        batch_sentence = np.broadcast_to(np.asarray(indices, np.int64), batch_value.shape)
        batch_pair = np.moveaxis(pairs.astype(np.int64), 0, -2)  # [L, H, S, B, 2]
        value = np.concatenate([self.top_value, batch_value], axis=-1)
        sentence = np.concatenate([self.top_sentence, batch_sentence], axis=-1)
        pair = np.concatenate([self.top_pair, batch_pair], axis=-2)
        # Empty slots hold -inf with sentence -1; rank them after every real entry.
        tie_break = np.where(sentence < 0, np.iinfo(np.int64).max, sentence)
        order = np.lexsort((tie_break, -value), axis=-1)[..., : self.top_k]
        new_sentence = np.take_along_axis(sentence, order, axis=-1)
        self.changed |= (new_sentence != self.top_sentence).any(-1)
        self.top_value = np.take_along_axis(value, order, axis=-1)
        self.top_sentence = new_sentence
        self.top_pair = np.take_along_axis(pair, order[..., None], axis=-2)

    def sums_frame(self, run: str) -> pd.DataFrame:
        layer, head, stat = np.meshgrid(
            np.arange(self.layers),
            np.arange(self.heads),
            np.arange(len(self.statistics)),
            indexing="ij",
        )
        return pd.DataFrame(
            {
                "run_id": run,
                "layer": layer.ravel().astype(np.int32),
                "head": head.ravel().astype(np.int32),
                "statistic": np.asarray(self.statistics, dtype=object)[stat.ravel()],
                "n": self.count.ravel(),
                "total": self.total.ravel(),
                "total_sq": self.total_sq.ravel(),
            }
        )

    def changed_examples_frame(self, run: str) -> pd.DataFrame:
        """Rows of `head_examples` for the heads whose examples changed; clears `changed`."""
        layer, head, stat = np.nonzero(self.changed)
        self.changed[:] = False
        values = self.top_value[layer, head, stat]  # [m, K]
        keep = np.isfinite(values)
        m, k = values.shape
        rank = np.broadcast_to(np.arange(k), (m, k))
        pairs = self.top_pair[layer, head, stat]
        pick = lambda a: np.broadcast_to(a[:, None], (m, k))[keep]  # noqa: E731
        return pd.DataFrame(
            {
                "run_id": run,
                "layer": pick(layer).astype(np.int32),
                "head": pick(head).astype(np.int32),
                "statistic": np.asarray(self.statistics, dtype=object)[pick(stat)],
                "rank": rank[keep].astype(np.int32),
                "value": values[keep],
                "sentence_index": self.top_sentence[layer, head, stat][keep].astype(np.int32),
                "query": pairs[..., 0][keep].astype(np.int32),
                "key": pairs[..., 1][keep].astype(np.int32),
            }
        )

    def load(self, sums: pd.DataFrame, examples: pd.DataFrame) -> None:
        """Restore the state written by `sums_frame` / `changed_examples_frame`."""
        position = {name: i for i, name in enumerate(self.statistics)}
        if len(sums):
            s = sums["statistic"].map(position).to_numpy()
            at = (sums["layer"].to_numpy(), sums["head"].to_numpy(), s)
            self.count[at] = sums["n"].to_numpy()
            self.total[at] = sums["total"].to_numpy()
            self.total_sq[at] = sums["total_sq"].to_numpy()
        if len(examples):
            s = examples["statistic"].map(position).to_numpy()
            at = (
                examples["layer"].to_numpy(),
                examples["head"].to_numpy(),
                s,
                examples["rank"].to_numpy(),
            )
            self.top_value[at] = examples["value"].to_numpy()
            self.top_sentence[at] = examples["sentence_index"].to_numpy()
            self.top_pair[at] = np.stack(
                [examples["query"].to_numpy(), examples["key"].to_numpy()], axis=-1
            )


def sample_stride(total: int) -> int:
    return max(1, math.ceil(total / TYPICAL_SAMPLE))


def sample_frame(run: str, indices: np.ndarray, values: np.ndarray, stride: int) -> pd.DataFrame:
    """`head_sample` rows of the batch's sentences that fall on the sample grid."""
    chosen = [b for b, index in enumerate(indices) if index % stride == 0]
    rows = []
    for b in chosen:
        layers, heads = values.shape[1:3]
        for layer in range(layers):
            for head in range(heads):
                rows.append((run, int(indices[b]), layer, head, values[b, layer, head].tolist()))
    return pd.DataFrame(rows, columns=["run_id", "sentence_index", "layer", "head", "values"])


# --------------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------------

# Runs going in this process, by (store file, run id): two sessions adding the same batches to
# one run's sums would count them twice.
_ACTIVE_RUNS: set[tuple[str, str]] = set()
_ACTIVE_RUNS_GUARD = threading.Lock()


def _batches(order: np.ndarray, start: int, batch_size: int) -> Iterator[np.ndarray]:
    for begin in range(start, len(order), batch_size):
        yield order[begin : begin + batch_size]


def run_corpus(
    model: LoadedModel,
    sentences: Sequence[str],
    *,
    max_tokens: int = 128,
    store: CorpusStore | str | None = None,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    mode: str = "default",
    ray_address: str | None = None,
    workers: int = 2,
):
    """Measure every head's statistics over `sentences`, writing them to the store as it goes.

    Returns a `CorpusResult`. A run already finished in the store returns at once; one that
    was stopped resumes where it stopped. `progress(done, total, sentences_per_second,
    seconds_left)` is called after every batch; returning False stops the run after saving
    (the result then has `finished == False`). With `ray_address` ("local" or a cluster
    address) the batches run on `workers` Ray actors, each with its own copy of the model,
    and the same tables are written.
    """
    check_mode(mode)
    texts = check_sentences(sentences)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CorpusError("The batch size must be a whole number of at least 1.")
    tokens = effective_max_tokens(model, max_tokens)
    store = store if isinstance(store, CorpusStore) else CorpusStore(store)
    corpus = corpus_hash(texts)
    run = store.scope(run_id(model.name, corpus, tokens, mode))
    statistics = tuple(statistic_descriptions(mode))

    record = store.run(run)
    if record is not None and record.finished:
        return CorpusResult.load(store, run)
    claim = (str(store.path), run)
    with _ACTIVE_RUNS_GUARD:
        if claim in _ACTIVE_RUNS:
            raise RunInProgressError(
                "This corpus is already being measured with these settings (in another session "
                "or tab): its results fill in as it runs; open them instead of starting again."
            )
        _ACTIVE_RUNS.add(claim)
    try:
        return _run(
            model,
            texts,
            store,
            run,
            corpus,
            tokens,
            mode,
            statistics,
            progress,
            batch_size,
            ray_address,
            workers,
        )
    finally:
        with _ACTIVE_RUNS_GUARD:
            _ACTIVE_RUNS.discard(claim)


def _run(
    model: LoadedModel,
    texts: list[str],
    store: CorpusStore,
    run: str,
    corpus: str,
    tokens: int,
    mode: str,
    statistics: tuple[str, ...],
    progress: Progress | None,
    batch_size: int,
    ray_address: str | None,
    workers: int,
):
    record = store.run(run)
    if record is not None and record.finished:  # finished by another thread meanwhile
        return CorpusResult.load(store, run)

    order, lengths = processing_order(model, texts, tokens)
    accumulator = Accumulator(model.num_layers, model.num_heads, statistics)
    if record is None:
        record = RunRecord(
            run,
            model.name,
            corpus,
            tokens,
            mode,
            statistics,
            model.num_layers,
            model.num_heads,
            len(texts),
            0,
            0,
            0.0,
        )
        store.create_run(record, texts)
    else:
        accumulator.load(store.sums(run), store.all_examples(run))
    done, seconds = record.done, record.seconds
    stride = sample_stride(len(texts))
    truncated = int((lengths[order[:done]] > tokens).sum())

    if ray_address is not None:
        from core.corpus.cluster import ray_batches

        results = ray_batches(
            model.name,
            texts,
            _batches(order, done, batch_size),
            tokens,
            mode,
            ray_address,
            workers,
        )
    else:
        results = (
            (indices, *process_batch(model, [texts[i] for i in indices], tokens, mode))
            for indices in _batches(order, done, batch_size)
        )

    pending_sample: list[pd.DataFrame] = []
    last_flush = started = time.perf_counter()
    base_seconds, base_done = seconds, done

    def flush() -> None:
        nonlocal last_flush, pending_sample
        sample = pd.concat(pending_sample, ignore_index=True) if pending_sample else None
        store.save_progress(
            run,
            done=done,
            truncated=truncated,
            seconds=seconds,
            sums=accumulator.sums_frame(run),
            examples=accumulator.changed_examples_frame(run),
            sample=sample,
        )
        pending_sample = []
        last_flush = time.perf_counter()

    saved = done
    try:
        for indices, values, pairs in results:
            accumulator.add(indices, values, pairs)
            pending_sample.append(sample_frame(run, indices, values, stride))
            done += len(indices)
            truncated += int((lengths[indices] > tokens).sum())
            now = time.perf_counter()
            seconds = base_seconds + (now - started)
            rate = (done - base_done) / max(now - started, 1e-9)
            left = (len(texts) - done) / rate if rate > 0 else math.inf
            keep_going = progress(done, len(texts), rate, left) if progress else None
            if keep_going is False or done >= len(texts) or now - last_flush >= FLUSH_SECONDS:
                flush()
                saved = done
            if keep_going is False:
                break
    except BaseException:
        # Keep the batches already measured (the accumulator holds exactly `done` sentences),
        # so that a failure or an interrupt loses nothing a resume would have to redo.
        if done > saved:
            flush()
        raise
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
    if pending_sample:
        flush()
    return CorpusResult.load(store, run)
