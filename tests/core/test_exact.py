"""Exact attention from captured queries and keys: rows, tiles, pooled overviews, statistics.

Every family's pieces are compared with the model's own eager `output_attentions`, from an
independent load straight from transformers, at about 300 tokens: longer than the modern tiny
models' sliding window of 8, so windows and causal masks are exercised.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

import core
from core import (
    AttentionTooLargeError,
    NotEnoughMemoryError,
    attention_rollout,
    generate_with_attention,
    load_model,
    run_attention,
)
from core.capture import ATTENTION_IMPLEMENTATION
from core.families import SELF
from core.row_stats import ROW_STATISTICS, STATISTICS, row_statistics
from tests.tiny_models import (
    FAMILIES,
    MODERN_FAMILIES,
    SEQ2SEQ_FAMILIES,
    SLIDING_WINDOW,
    auto_class,
    build_tiny_model,
)

LONG_TEXT = "The researchers visualized attention patterns in the garden. " * 25
ATOL = 1e-5
WINDOWED = {"mistral": (SLIDING_WINDOW, SLIDING_WINDOW), "gemma2": (SLIDING_WINDOW, None)}
WINDOWED["gemma3"] = WINDOWED["gemma2"]


def eager_attentions(path, family: str, model) -> np.ndarray:
    """`[layers, heads, n, n]` from an independent eager load of the checkpoint."""
    reference = auto_class(family).from_pretrained(str(path), attn_implementation="eager").eval()
    tokenizer = model.tokenizer
    inputs = tokenizer(LONG_TEXT, return_tensors="pt", truncation=True, max_length=model.max_length)
    inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
    with torch.inference_mode():
        if family in SEQ2SEQ_FAMILIES:
            output = reference.get_encoder()(**inputs, output_attentions=True)
        else:
            output = reference(**inputs, output_attentions=True)
    return torch.stack([a[0] for a in output.attentions]).float().numpy()


def expected_computed(family: str, layer: int, n: int) -> np.ndarray:
    rows, cols = np.arange(n)[:, None], np.arange(n)[None, :]
    if family in SEQ2SEQ_FAMILIES or family in ("bert", "bert-encoder", "distilbert", "roberta"):
        return np.ones((n, n), dtype=bool)
    if family == "albert":
        return np.ones((n, n), dtype=bool)
    computed = cols <= rows
    window = WINDOWED.get(family, (None, None))[layer]
    if window is not None:
        computed &= cols > rows - window
    return computed


def pooled_reference(dense: np.ndarray, computed: np.ndarray, edges, reduce: str) -> np.ndarray:
    values = np.where(computed, dense, np.nan)
    size = len(edges) - 1
    grid = np.full((size, size), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        for a in range(size):
            for b in range(size):
                cell = values[edges[a] : edges[a + 1], edges[b] : edges[b + 1]]
                grid[a, b] = np.nanmean(cell) if reduce == "mean" else np.nanmax(cell)
    return grid


@pytest.fixture(scope="module")
def captured(loaded_tiny, tiny_model_path):
    """Factory: `(result, eager [layers, heads, n, n])` for a family, built once per module."""
    cache = {}

    def get(family: str):
        if family not in cache:
            model = loaded_tiny(family)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", core.TruncationWarning)
                result = run_attention(model, LONG_TEXT, target_text="Yes.")
            cache[family] = (result, eager_attentions(tiny_model_path(family), family, model))
        return cache[family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_and_tiles_equal_the_eager_attention(captured, family):
    result, eager = captured(family)
    layers, heads, n, _ = eager.shape
    assert n >= 200 and (result.num_layers, result.num_heads) == (layers, heads)
    # Nothing n² is held until asked for.
    assert result.nbytes < eager.nbytes / 4
    for layer in range(layers):
        computed = expected_computed(family, layer, n)
        np.testing.assert_array_equal(result.computed(layer, range(n), range(n)), computed)
        for head in range(heads):
            for query in (0, 1, n // 2, n - 1):
                row = result.row(layer, head, query)
                assert row.dtype == np.float32 and row.shape == (n,)
                assert np.isnan(row[~computed[query]]).all()
                np.testing.assert_allclose(
                    row[computed[query]], eager[layer, head, query, computed[query]], atol=ATOL
                )
            rows, cols = range(n // 3, n // 3 + 40), range(n // 3 - 20, n // 3 + 30)
            tile = result.tile(layer, head, rows, cols)
            assert tile.shape == (40, 50)
            inside = computed[n // 3 : n // 3 + 40, n // 3 - 20 : n // 3 + 30]
            expected = eager[layer, head, n // 3 : n // 3 + 40, n // 3 - 20 : n // 3 + 30]
            np.testing.assert_allclose(tile[inside], expected[inside], atol=ATOL)
            assert np.isnan(tile[~inside]).all()
            # The model itself gives 0 where it computes nothing.
            assert np.abs(eager[layer, head][~computed]).max(initial=0.0) <= ATOL


def statistics_reference(eager: np.ndarray, window: int, chosen: np.ndarray) -> dict:
    """Every row statistic of `core.row_stats.STATISTICS`, and the share of the keys
    `chosen`, written out from the definitions on eager weights `[layers, heads, n, n]` in
    float64: `{name: [layers, heads, n]}`, NaN where a row does not define it."""
    w = eager.astype(np.float64)
    n = w.shape[-1]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(w > 0, w * np.log2(np.where(w > 0, w, 1.0)), 0.0)
        rest = w[..., 1:].sum(-1)
        without_first = np.where(
            rest > 0, -(plogp[..., 1:].sum(-1) - rest * np.log2(rest)) / rest, np.nan
        )
    previous = np.concatenate([np.full((*w.shape[:2], 1), np.nan), w[..., i[1:, 0], j[0, :-1]]], -1)
    following = np.concatenate(
        [w[..., i[:-1, 0], j[0, 1:]], np.full((*w.shape[:2], 1), np.nan)], -1
    )
    return {
        "to_first": w[..., 0],
        "entropy": -plogp.sum(-1),
        "mean_distance": (w * np.abs(i - j)).sum(-1),
        "local_share": (w * (np.abs(i - j) < window)).sum(-1),
        "recent_share": (w * ((i - j >= 0) & (i - j < window))).sum(-1),
        "entropy_without_first": without_first,
        "to_self": np.diagonal(w, axis1=-2, axis2=-1),
        "to_previous": previous,
        "to_next": following,
        "chosen": w[..., chosen].sum(-1),
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_whole_array_and_statistics_equal_the_eager_attention(captured, family):
    result, eager = captured(family)
    np.testing.assert_allclose(result.attentions, eager, atol=ATOL, rtol=0)
    np.testing.assert_allclose(result.attentions.sum(-1), 1.0, atol=ATOL)
    n = eager.shape[-1]
    chosen = np.arange(n) % 5 == 2
    expected = statistics_reference(eager, 11, chosen)
    # Read in pieces: the whole array above is kept by the result, the stack does not use it.
    pieces = core.CapturedStack(result.pieces().layers, budget=0)
    per_row = pieces.row_values(tuple(STATISTICS), 11, {"chosen": chosen})
    assert set(per_row) == set(expected)
    for name, values in per_row.items():
        assert values.shape == eager.shape[:3] and values.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(values), np.isnan(expected[name]), err_msg=name)
        # Distances are in tokens: float32 sums of hundreds of them agree to a relative 1e-6.
        rtol = 1e-5 if name == "mean_distance" else 0
        np.testing.assert_allclose(values, expected[name], atol=ATOL, rtol=rtol, err_msg=name)
    means = pieces.statistics(11, tuple(STATISTICS))
    for name, values in means.items():
        assert values.shape == eager.shape[:2] and values.dtype == np.float64
        np.testing.assert_allclose(
            values, np.nanmean(expected[name], -1), atol=ATOL, rtol=1e-6, err_msg=name
        )
    # The default: ROW_STATISTICS, as `result.statistics()` gives them, window 8.
    default = statistics_reference(eager, 8, chosen)
    for name, values in result.statistics().items():
        np.testing.assert_allclose(values, default[name].mean(-1), atol=ATOL, rtol=1e-6)
    assert set(result.statistics()) == set(ROW_STATISTICS)


def test_row_statistics_of_a_block_equal_the_definitions():
    rng = np.random.default_rng(0)
    weights = rng.random((2, 3, 6, 6)) * np.tri(6)
    weights /= weights.sum(-1, keepdims=True)
    expected = statistics_reference(weights, 3, np.zeros(6, dtype=bool))
    for name, values in row_statistics(weights, np.arange(6), 3).items():
        np.testing.assert_allclose(values, expected[name], atol=1e-6, err_msg=name)


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "mistral", "gemma2", "t5"])
def test_every_heads_pooled_overview_at_once_equals_each_heads(captured, family):
    result, eager = captured(family)
    pieces = core.CapturedStack(result.pieces().layers, budget=0)
    grid, row_edges, col_edges = pieces.pooled_heads(size=16)
    assert grid.shape == (*eager.shape[:2], 16, 16) and grid.dtype == np.float32
    for layer in range(result.num_layers):
        for head in range(result.num_heads):
            one, rows, cols = pieces.pooled(layer, head, size=16)
            np.testing.assert_array_equal(np.isnan(grid[layer, head]), np.isnan(one))
            np.testing.assert_allclose(grid[layer, head], one, atol=1e-7, rtol=1e-5)
    np.testing.assert_array_equal(row_edges, rows)
    np.testing.assert_array_equal(col_edges, cols)
    # A whole array held as it is (a causal one marks its upper triangle as never computed).
    dense = core.DenseStack(eager, causal=result.is_causal())
    whole, _, _ = dense.pooled_heads(size=16)
    for layer in range(result.num_layers):
        np.testing.assert_allclose(whole[layer, 1], dense.pooled(layer, 1, 16)[0], rtol=1e-5)


def test_unknown_statistics_windows_and_key_sets_are_refused(captured):
    from core import InvalidSelectionError

    pieces = captured("llama")[0].pieces()
    with pytest.raises(InvalidSelectionError, match="Unknown statistics"):
        pieces.statistics(8, ("to_first", "spread"))
    with pytest.raises(InvalidSelectionError, match="window"):
        pieces.statistics(0)
    with pytest.raises(InvalidSelectionError, match="booleans"):
        pieces.row_values(("entropy",), 8, {"few": np.ones(3, dtype=bool)})


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "mistral", "gemma2", "t5"])
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_pooled_overview_equals_pooling_the_eager_attention(captured, family, reduce):
    result, eager = captured(family)
    n = eager.shape[-1]
    for layer in range(result.num_layers):
        grid, row_edges, col_edges = result.pooled(layer, 3, size=16, reduce=reduce)
        assert grid.shape == (16, 16) and grid.dtype == np.float32
        np.testing.assert_array_equal(row_edges, col_edges)
        assert row_edges[0] == 0 and row_edges[-1] == n
        expected = pooled_reference(
            eager[layer, 3], expected_computed(family, layer, n), row_edges, reduce
        )
        np.testing.assert_array_equal(np.isnan(grid), np.isnan(expected))
        np.testing.assert_allclose(grid, expected, atol=ATOL, equal_nan=True)


@pytest.mark.parametrize("family", ["gpt2", "llama", "mistral", "gemma2", "phi3"])
def test_the_capturing_pass_computes_what_the_eager_model_computes(
    loaded_tiny, tiny_model_path, family
):
    # The fast outputs (fused flash kernel, SDPA with a window mask, blockwise soft-cap) feed
    # the next layers: the logits show they are the model's.
    from core.inference import encode, forward

    model = loaded_tiny(family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", core.TruncationWarning)
        encoded = encode(model, LONG_TEXT)
    logits = forward(model, encoded.inputs, capture=True).logits
    reference = auto_class(family).from_pretrained(
        str(tiny_model_path(family)), attn_implementation="eager"
    )
    with torch.inference_mode():
        expected = reference.eval()(**encoded.inputs).logits[0]
    np.testing.assert_allclose(logits.numpy(), expected.numpy(), atol=1e-4, rtol=0)


def test_pooling_a_short_input_keeps_one_cell_per_token(captured):
    result, eager = captured("llama")
    n = eager.shape[-1]
    grid, edges, _ = result.pooled(0, 0, size=10 * n)
    assert grid.shape == (n, n) and (np.diff(edges) == 1).all()


def test_a_captured_result_survives_pickling(captured):
    import pickle

    result, eager = captured("mistral")
    copy = pickle.loads(pickle.dumps(result))
    np.testing.assert_array_equal(copy.row(1, 3, 100), result.row(1, 3, 100))
    np.testing.assert_allclose(copy.attentions, eager, atol=ATOL)


def test_windowed_layers_differ_per_layer(captured):
    result, _ = captured("gemma2")
    assert [result.window(layer) for layer in range(result.num_layers)] == [SLIDING_WINDOW, None]
    assert captured("mistral")[0].window(1) == SLIDING_WINDOW
    assert captured("llama")[0].window(0) is None


@pytest.mark.parametrize("family", SEQ2SEQ_FAMILIES)
def test_encoder_decoder_other_stacks_stay_whole(captured, family):
    result, _ = captured(family)
    assert isinstance(result.attention_stacks[SELF], core.CapturedStack)
    decoder, queries, keys = result.stack("cross")
    assert decoder.shape[2:] == (len(queries), len(keys))
    np.testing.assert_allclose(decoder.sum(-1), 1.0, atol=ATOL)
    row = result.row(0, 1, 0, stack="decoder_self")
    assert np.isnan(row[1:]).all() and row[0] == pytest.approx(1.0)


def test_the_whole_array_beyond_the_budget_is_refused_with_what_to_use(loaded_tiny):
    result = run_attention(loaded_tiny("llama"), LONG_TEXT, budget=1024)
    with pytest.raises(AttentionTooLargeError, match=r"result\.row.*result\.tile.*pooled"):
        _ = result.attentions
    assert result.row(1, 2, 5).shape == (len(result.tokens),)  # pieces still work


def test_bf16_checkpoint_loads_in_bf16_and_rows_sum_to_one(tmp_path):
    path = build_tiny_model("llama", tmp_path / "llama-bf16", dtype="bfloat16")
    model = load_model(str(path))
    assert model.dtype == torch.bfloat16
    assert model.model.config._attn_implementation == ATTENTION_IMPLEMENTATION
    result = run_attention(model, LONG_TEXT)
    # Recomputed in float32 from the bf16 queries and keys with float32 normalisers.
    np.testing.assert_allclose(result.attentions.sum(-1), 1.0, atol=1e-5)
    attention_rollout(result.attentions)  # the row-sum check passes
    upcast = load_model(str(path), dtype="float32")
    assert upcast.dtype == torch.float32
    again = run_attention(upcast, LONG_TEXT)
    # The same weights in float32 arithmetic: bf16 activations differ by about 2^-8.
    np.testing.assert_allclose(again.attentions, result.attentions, atol=1e-2)


def test_a_dtype_that_is_not_floating_point_is_refused(tiny_model_path):
    with pytest.raises(core.ModelLoadError, match="not a floating-point dtype"):
        load_model(str(tiny_model_path("llama")), dtype="int8")


def test_bf16_weights_computed_in_bf16_pass_the_row_sum_check_with_its_tolerance():
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(2, 3, 64, 64)) * 5)  # peaked, as heads are
    weights = torch.softmax(logits, -1).to(torch.bfloat16).float().numpy()
    assert np.abs(weights.sum(-1) - 1).max() > core.rollout.ROW_SUM_ATOL  # the bug in issue 21
    with pytest.raises(core.InvalidAttentionError, match="sums to"):
        attention_rollout(weights)
    attention_rollout(weights, atol=core.row_sum_tolerance(torch.bfloat16))
    core.attention_flow(weights, rows=[5], atol=core.row_sum_tolerance("bfloat16"))
    with pytest.raises(core.InvalidAttentionError, match="sums to"):
        # Unnormalised scores are still refused at the wider tolerance.
        attention_rollout(np.exp(logits.numpy()), atol=core.row_sum_tolerance("bfloat16"))


def test_running_out_of_memory_says_what_to_lower(loaded_tiny):
    model = loaded_tiny("llama")

    def allocator_failure(*_):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB")

    handle = model.model.model.layers[1].register_forward_hook(allocator_failure)
    try:
        with pytest.raises(NotEnoughMemoryError, match=r"tokens.*fewer tokens") as error:
            run_attention(model, LONG_TEXT)
    finally:
        handle.remove()
    assert "may not be a text model" not in str(error.value)
    assert "bfloat16" in str(error.value)  # a float32 model can be loaded in half the memory


def test_a_plain_forward_still_returns_eager_weights(loaded_tiny, captured):
    # Callers outside core.capture's contexts (methods, gradient passes) get weights as eager.
    model = loaded_tiny("gemma2")
    _, eager = captured("gemma2")
    inputs = model.tokenizer(LONG_TEXT, return_tensors="pt")
    with torch.inference_mode():
        output = model.model(**inputs, output_attentions=True)
    weights = torch.stack([a[0] for a in output.attentions]).numpy()
    np.testing.assert_allclose(weights, eager, atol=1e-6, rtol=0)


def test_generation_uses_the_key_value_cache(loaded_tiny, monkeypatch):
    from transformers.integrations import sdpa_attention

    calls = []
    original = sdpa_attention.sdpa_attention_forward

    def spy(module, query, key, *args, **kwargs):
        calls.append((query.shape[2], key.shape[2]))
        return original(module, query, key, *args, **kwargs)

    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", spy)
    model = loaded_tiny("qwen2")
    result = generate_with_attention(model, "The researchers visualized", max_new_tokens=4)
    # One query per step against the cached keys of everything before it.
    steps = [(q, k) for q, k in calls if q == 1]
    assert steps and all(k > 1 for _, k in steps)
    n = len(result.tokens)
    np.testing.assert_allclose(result.attentions.sum(-1), 1.0, atol=ATOL)
    assert result.generated_from < n


def test_captures_of_concurrent_threads_stay_apart(loaded_tiny):
    model = loaded_tiny("mistral")
    texts = ["The cat sat on the mat. " * 8, "A heavy box was in the quiet kitchen. " * 5]
    expected = [run_attention(model, text).attentions for text in texts]
    errors: list[BaseException] = []
    start = threading.Barrier(len(texts))

    def work(index: int) -> None:
        try:
            start.wait()
            for _ in range(5):
                got = run_attention(model, texts[index]).attentions
                np.testing.assert_allclose(got, expected[index], atol=1e-6)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


@pytest.mark.parametrize("family", MODERN_FAMILIES)
def test_modern_families_load_with_the_atlas_attention(loaded_tiny, family):
    model = loaded_tiny(family)
    assert model.model.config._attn_implementation == ATTENTION_IMPLEMENTATION
    result = run_attention(model, "The cat sat on the mat.")
    assert result.next_token  # the same fast pass gives the predictions
