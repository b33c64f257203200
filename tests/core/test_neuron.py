"""The neuron view: query and key vectors read by the attention function, scores rebuilt."""

from __future__ import annotations

import math
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from core import AtlasError, LoadedModel, ModelKind, PositionOutOfRangeError, run_attention
from core.capture import ATTENTION_IMPLEMENTATION
from core.exact import CapturedStack
from core.inference import encode, forward
from core.neuron import (
    NeuronView,
    NeuronViewUnsupportedError,
    neuron_view,
    neuron_view_of,
    supports_neuron_view,
)
from tests.tiny_models import MODERN_FAMILIES, NUM_HEADS, NUM_KV_HEADS, SLIDING_WINDOW

FAMILIES = ("bert", "roberta", "distilbert", "albert", "gpt2", "bart", "t5")
TEXT = "The quick brown fox jumps over the lazy dog."
PAIR = "It was not amused."
HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_always_called",
)


def cases(model: LoadedModel, n: int) -> list[tuple[int, int, int]]:
    """(layer, head, query) triples: first and last layer, zero and non-zero heads and tokens."""
    last_layer, last_head = model.num_layers - 1, model.num_heads - 1
    return [(0, 0, 0), (last_layer, last_head, n - 1), (1, 2, 3), (0, 1, n // 2)]


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def hook_snapshot(network: torch.nn.Module) -> dict[str, tuple]:
    return {
        name: tuple(tuple(getattr(module, attr).items()) for attr in HOOK_DICTS)
        for name, module in network.named_modules()
    }


def assert_no_neuron_hooks(network: torch.nn.Module, before: dict[str, tuple]) -> None:
    assert hook_snapshot(network) == before
    for module in network.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks"):
            for hook in getattr(module, attr).values():
                assert getattr(hook, "__module__", "") != "core.neuron", (module, hook)


def warmed_snapshot(model: LoadedModel) -> dict[str, tuple]:
    """Hooks on the model once transformers has installed its own output-capturing ones."""
    forward(model, encode(model, "warm up").inputs)
    return hook_snapshot(model.model)


# --------------------------------------------------------------------------------------------
# The numbers.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_rebuilt_softmax_equals_the_models_attention(loaded_tiny, family):
    model = loaded_tiny(family)
    # A given target spares the seq2seq models greedy generation; their encoders read no pair.
    tokens = run_attention(model, TEXT, PAIR, target_text="Yes.").tokens
    n = len(tokens)
    causal = family == "gpt2"
    for layer, head, query in cases(model, n):
        view = neuron_view(model, TEXT, layer, head, query, PAIR)
        d = view.head_dim
        assert (view.layer, view.head, view.query) == (layer, head, query)
        assert view.tokens == tokens
        assert view.query_vector.shape == (d,) and view.key_vectors.shape == (n, d)
        assert view.products.shape == (n, d)
        assert view.scores.shape == view.weights.shape == view.attention.shape == (n,)
        assert d * model.num_heads == 32  # the tiny models' hidden size

        # T5 has no 1/√d and adds its relative position bias; the others scale and add nothing.
        expected_scale = 1.0 if family == "t5" else 1 / math.sqrt(d)
        assert view.scale == pytest.approx(expected_scale)
        if family != "t5":
            assert (view.bias == 0).all()
        expected_masked = np.arange(n) > query if causal else np.zeros(n, dtype=bool)
        np.testing.assert_array_equal(view.masked, expected_masked)

        logits = view.key_vectors.astype(np.float64) @ view.query_vector * view.scale + view.bias
        rebuilt = softmax(np.where(expected_masked, -np.inf, logits))
        np.testing.assert_allclose(rebuilt, view.attention, atol=1e-5, rtol=0)
        np.testing.assert_allclose(view.weights, view.attention, atol=1e-5, rtol=0)
        assert view.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_products_sum_to_the_unmasked_scores(loaded_tiny, family):
    model = loaded_tiny(family)
    n = len(encode(model, TEXT).tokens)
    view = neuron_view(model, TEXT, model.num_layers - 1, 1, n // 2)
    np.testing.assert_allclose(
        view.products, view.query_vector[None, :] * view.key_vectors, rtol=1e-6
    )
    visible = ~view.masked
    expected = view.products.sum(-1)[visible] * view.scale + view.bias[visible]
    if family != "t5":
        expected = view.products.sum(-1)[visible] / math.sqrt(view.head_dim)
    np.testing.assert_allclose(view.scores[visible], expected, rtol=1e-9, atol=1e-12)


def test_causal_model_masks_later_keys_with_minus_infinity(loaded_tiny):
    model = loaded_tiny("gpt2")
    view = neuron_view(model, TEXT, 1, 3, 4)
    later = np.arange(len(view.tokens)) > 4
    assert later.any()
    assert np.isneginf(view.scores[later]).all() and np.isfinite(view.scores[~later]).all()
    assert (view.weights[later] == 0).all() and (view.attention[later] == 0).all()
    assert view.weights[~later].sum() == pytest.approx(1.0)


def test_t5_bias_is_its_relative_position_bias(loaded_tiny):
    model = loaded_tiny("t5")
    n = len(encode(model, TEXT).tokens)
    attention = model.model.get_encoder().block[0].layer[0].SelfAttention
    with torch.inference_mode():
        expected = attention.compute_bias(n, n)[0].double().numpy()  # [heads, n, n]
    for layer, head, query in [(0, 2, 5), (1, 3, 0)]:
        view = neuron_view(model, TEXT, layer, head, query)
        # Every T5 layer reuses the bias the first layer computed.
        np.testing.assert_allclose(view.bias, expected[head, query], rtol=1e-6)
        assert np.abs(view.bias).max() > 0


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_vectors_are_the_layers_own_projections(tiny_model_path, loaded_tiny, family):
    """Independently of hooks: project the layer's input hidden state with its weights."""
    path = str(tiny_model_path(family))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model_class = AutoModelForCausalLM if family == "gpt2" else AutoModel
    reference = model_class.from_pretrained(path, attn_implementation="eager").eval()
    with torch.inference_mode():
        hidden = reference(**tokenizer(TEXT, return_tensors="pt"), output_hidden_states=True)
    layer, head, query = 1, 2, 3
    with torch.inference_mode():
        if family == "gpt2":
            block = reference.transformer.h[layer]
            q, k, _ = block.attn.c_attn(block.ln_1(hidden.hidden_states[layer]))[0].chunk(3, -1)
        else:
            attention = reference.encoder.layer[layer].attention.self
            q = attention.query(hidden.hidden_states[layer])[0]
            k = attention.key(hidden.hidden_states[layer])[0]
    view = neuron_view(loaded_tiny(family), TEXT, layer, head, query)
    columns = slice(head * view.head_dim, (head + 1) * view.head_dim)
    np.testing.assert_allclose(view.query_vector, q[query, columns].numpy(), atol=1e-6)
    np.testing.assert_allclose(view.key_vectors, k[:, columns].numpy(), atol=1e-6)


def test_albert_shared_layer_is_captured_per_call(loaded_tiny):
    model = loaded_tiny("albert")
    first, second = (neuron_view(model, TEXT, layer, 1, 2) for layer in (0, 1))
    # One module runs both layers; each call sees that layer's own input.
    assert not np.allclose(first.key_vectors, second.key_vectors)
    for view in (first, second):
        np.testing.assert_allclose(view.weights, view.attention, atol=1e-5, rtol=0)


def test_embedded_model(embedded):
    assert supports_neuron_view(embedded)
    view = neuron_view(embedded, "Attention is all you need.", 5, 11, 3, "Or so they say.")
    assert view.query_vector.shape == (32,)
    np.testing.assert_allclose(view.weights, view.attention, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# Other architectures with the same attention code.
# --------------------------------------------------------------------------------------------


def _wrapped(network: torch.nn.Module, tokenizer, kind: ModelKind, model_type: str) -> LoadedModel:
    return LoadedModel(
        name=f"tiny-{model_type}",
        tokenizer=tokenizer,
        model=network.eval(),
        kind=kind,
        num_layers=2,
        num_heads=4,
        max_length=128,
        source="local",
        model_type=model_type,
    )


def _build(family: str, tiny_model_path) -> LoadedModel:
    import transformers as tf

    tokenizer_family = {"mbart": "bart", "mt5": "t5", "llama": "gpt2"}.get(family, "bert")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_path(tokenizer_family)))
    size = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
    bert_like = {
        **size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
    }
    kind = ModelKind.ENCODER
    if family == "electra":
        config = tf.ElectraConfig(**bert_like, embedding_size=32)
    elif family in ("xlm-roberta", "camembert"):
        config_class = tf.XLMRobertaConfig if family == "xlm-roberta" else tf.CamembertConfig
        config = config_class(**bert_like, max_position_embeddings=130)
    elif family == "mbart":
        kind = ModelKind.ENCODER_DECODER
        config = tf.MBartConfig(
            **size,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=37,
            decoder_ffn_dim=37,
        )
    elif family == "mt5":
        kind = ModelKind.ENCODER_DECODER
        config = tf.MT5Config(
            **size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, decoder_start_token_id=0
        )
    else:  # llama: q_proj/k_proj like BART, but rotary embeddings rotate them afterwards
        kind = ModelKind.CAUSAL_LM
        config = tf.LlamaConfig(
            **size,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = AutoModel.from_config(config, attn_implementation=ATTENTION_IMPLEMENTATION)
    return _wrapped(network, tokenizer, kind, config.model_type)


@pytest.mark.parametrize("family", ["electra", "xlm-roberta", "camembert", "mbart", "mt5"])
def test_other_architectures_with_known_attention(tiny_model_path, family):
    model = _build(family, tiny_model_path)
    assert supports_neuron_view(model)
    n = len(encode(model, TEXT).tokens)
    for layer, head, query in cases(model, n):
        view = neuron_view(model, TEXT, layer, head, query)
        logits = view.key_vectors.astype(np.float64) @ view.query_vector * view.scale + view.bias
        np.testing.assert_allclose(softmax(logits), view.attention, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", MODERN_FAMILIES)
def test_modern_decoders_show_the_key_of_their_group(loaded_tiny, family):
    """Rotary queries and keys, grouped-query keys, windows (Mistral, Gemma) and soft-caps."""
    model = loaded_tiny(family)
    text = TEXT + " " + PAIR  # longer than the tiny models' window of 8
    n = len(encode(model, text).tokens)
    for layer in range(model.num_layers):
        for head in range(model.num_heads):
            view = neuron_view(model, text, layer, head, n - 1)
            assert view.key_head == head // (NUM_HEADS // NUM_KV_HEADS)
            keys = np.arange(n)
            visible = keys <= n - 1
            if view.window is not None:
                assert view.window == SLIDING_WINDOW
                visible &= keys > n - 1 - view.window
            np.testing.assert_array_equal(view.masked, ~visible)
            logits = view.key_vectors.astype(np.float64) @ view.query_vector * view.scale
            if view.softcap is not None:
                logits = view.softcap * np.tanh(logits / view.softcap)
            rebuilt = softmax(np.where(view.masked, -np.inf, logits))
            np.testing.assert_allclose(rebuilt, view.attention, atol=1e-5, rtol=0)
    windows = {neuron_view(model, text, layer, 0, n - 1).window for layer in (0, 1)}
    assert windows == {
        "mistral": {SLIDING_WINDOW},
        "gemma2": {SLIDING_WINDOW, None},
        "gemma3": {SLIDING_WINDOW, None},
    }.get(family, {None})


# --------------------------------------------------------------------------------------------
# Refusals.
# --------------------------------------------------------------------------------------------


def test_rotary_queries_and_keys_are_read_after_rotation(tiny_model_path):
    # Llama's projections are rotated before the dot product: the view reads what it saw.
    model = _build("llama", tiny_model_path)
    assert supports_neuron_view(model)
    n = len(encode(model, TEXT).tokens)
    for layer, head, query in cases(model, n):
        view = neuron_view(model, TEXT, layer, head, query)
        logits = view.key_vectors.astype(np.float64) @ view.query_vector * view.scale
        rebuilt = softmax(np.where(view.masked, -np.inf, logits))
        np.testing.assert_allclose(rebuilt, view.attention, atol=1e-5, rtol=0)


def test_attention_outside_the_interface_is_refused_with_its_name(tiny_model_path):
    model = _build("llama", tiny_model_path)
    model.model.config._attn_implementation = "eager"  # a private copy: nothing else shares it
    assert not supports_neuron_view(model)
    with pytest.raises(NeuronViewUnsupportedError, match=r"llama.*LlamaAttention.*eager") as error:
        neuron_view(model, TEXT, 0, 0, 0)
    assert isinstance(error.value, AtlasError)
    assert "core.load_model" in str(error.value)  # says what to do


class NoAttention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(30522, 8)
        self.mix = torch.nn.Linear(8, 8)

    def forward(self, input_ids, **_):
        return self.mix(self.embed(input_ids))


def test_model_without_attention_is_refused(loaded_tiny):
    model = _wrapped(NoAttention(), loaded_tiny("bert").tokenizer, ModelKind.ENCODER, "")
    assert not supports_neuron_view(model)
    with pytest.raises(NeuronViewUnsupportedError, match="NoAttention"):
        neuron_view(model, TEXT, 0, 0, 0)


def test_supported_families(loaded_tiny):
    assert all(supports_neuron_view(loaded_tiny(family)) for family in FAMILIES)


def test_scores_that_do_not_reproduce_the_attention_are_refused(embedded, monkeypatch):
    # An attention row from another query than the vectors shown must be caught.
    row = CapturedStack.row
    monkeypatch.setattr(CapturedStack, "row", lambda self, la, h, q: row(self, la, h, q + 1))
    with pytest.raises(NeuronViewUnsupportedError, match="do not reproduce"):
        neuron_view(embedded, "The cat sat on the mat.", 2, 3, 1)


@pytest.mark.parametrize(
    ("layer", "head", "query", "message"),
    [
        (2, 0, 0, r"Layer 2 does not exist: .* has 2 layers, numbered 0 to 1"),
        (-1, 0, 0, r"Layer -1 does not exist"),
        (0, 4, 0, r"Head 4 does not exist: .* has 4 heads, numbered 0 to 3"),
        (0, 0, 99, r"Token 99 does not exist: the input has \d+ tokens"),
        (0, 0, -1, r"Token -1 does not exist"),
    ],
)
def test_out_of_range_positions(loaded_tiny, layer, head, query, message):
    model = loaded_tiny("bert")
    before = warmed_snapshot(model)
    with pytest.raises(PositionOutOfRangeError, match=message):
        neuron_view(model, TEXT, layer, head, query)
    assert_no_neuron_hooks(model.model, before)


# --------------------------------------------------------------------------------------------
# Hooks never stay on the shared model.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["albert", "gpt2", "t5"])
def test_no_hooks_remain_after_a_view(loaded_tiny, family):
    model = loaded_tiny(family)
    before = warmed_snapshot(model)
    neuron_view(model, TEXT, 1, 1, 1)
    assert_no_neuron_hooks(model.model, before)


def test_no_hooks_remain_when_the_forward_pass_fails(loaded_tiny):
    model = loaded_tiny("bert")
    before = warmed_snapshot(model)

    def explode(*_):
        raise RuntimeError("boom in layer 1")

    # Fails mid-pass, after layer 0's attention has run with our hooks in place.
    failing = model.model.bert.encoder.layer[1].attention.self.key.register_forward_hook(explode)
    try:
        # core.inference.forward may wrap the model's own error; the message survives.
        with pytest.raises(Exception, match="boom in layer 1"):
            neuron_view(model, TEXT, 1, 0, 0)
    finally:
        failing.remove()
    assert_no_neuron_hooks(model.model, before)
    view = neuron_view(model, TEXT, 1, 0, 0)  # and the model still works
    np.testing.assert_allclose(view.weights, view.attention, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# Two sessions on one model.
# --------------------------------------------------------------------------------------------


def _same(a: NeuronView, b: NeuronView) -> None:
    assert a.labels == b.labels
    np.testing.assert_allclose(a.query_vector, b.query_vector, atol=1e-6)
    np.testing.assert_allclose(a.key_vectors, b.key_vectors, atol=1e-6)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-6)


def test_concurrent_views_and_forwards_on_one_model(loaded_tiny):
    model = loaded_tiny("gpt2")
    jobs = [
        [(TEXT, 0, 1, 2), ("A short one.", 1, 3, 1)],
        [("The children played in the garden after dinner.", 1, 0, 6), (PAIR, 0, 2, 0)],
    ]
    expected = {job: neuron_view(model, *job) for worker in jobs for job in worker}
    before = hook_snapshot(model.model)
    rounds = 15
    start = threading.Barrier(len(jobs) + 1)
    done = threading.Event()

    def viewer(worker: list[tuple]) -> list[tuple[tuple, NeuronView]]:
        start.wait()
        return [(job, neuron_view(model, *job)) for _ in range(rounds) for job in worker]

    def bystander() -> int:
        # Another session's plain forward passes, which take no lock: they must not feed the
        # views' hooks, nor be disturbed by them.
        start.wait()
        runs = 0
        while not done.is_set():
            attentions = run_attention(model, "Nobody noticed the strange noise.").attentions
            np.testing.assert_allclose(attentions.sum(-1), 1.0, atol=1e-5)
            runs += 1
        return runs

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to provoke interleaving
    try:
        with ThreadPoolExecutor(len(jobs) + 1) as pool:
            side = pool.submit(bystander)
            views = [pool.submit(viewer, worker) for worker in jobs]
            try:
                results = [item for future in views for item in future.result(timeout=60)]
            finally:
                done.set()  # a failing viewer must not leave the bystander running forever
            assert side.result(timeout=60) > 0
    finally:
        sys.setswitchinterval(interval)
    assert len(results) == rounds * sum(len(worker) for worker in jobs)
    for job, view in results:
        _same(view, expected[job])
    assert hook_snapshot(model.model) == before


# --------------------------------------------------------------------------------------------
# From a result's capture, without a second pass.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "gpt2", "t5", "gemma2", "qwen3"])
def test_a_results_capture_gives_the_same_view_without_a_pass(loaded_tiny, family, monkeypatch):
    """BERT with a pair, GPT-2, T5's bias, Gemma 2's soft-cap, window and key groups, Qwen3's
    q/k norms: every field equal to the view of its own pass."""
    model = loaded_tiny(family)
    pair = PAIR if family == "bert" else None
    result = run_attention(model, TEXT, pair)
    n = len(result.tokens)
    expected = {case: neuron_view(model, TEXT, *case, pair) for case in cases(model, n)}

    def no_pass(*args, **kwargs):
        raise AssertionError("neuron_view_of ran a forward pass")

    monkeypatch.setattr("core.neuron.forward", no_pass)
    for (layer, head, query), want in expected.items():
        got = neuron_view_of(result, layer, head, query)
        assert (got.layer, got.head, got.query, got.key_head) == (layer, head, query, want.key_head)
        assert got.labels == want.labels and got.dropped_tokens == want.dropped_tokens
        assert (got.scale, got.softcap, got.window) == (want.scale, want.softcap, want.window)
        for name in ("query_vector", "key_vectors", "products", "scores", "weights", "bias"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        np.testing.assert_array_equal(got.masked, want.masked)
        np.testing.assert_allclose(got.attention, want.attention, atol=1e-7)


def test_a_result_without_a_capture_or_out_of_range_is_refused(loaded_tiny):
    import dataclasses

    result = run_attention(loaded_tiny("gpt2"), TEXT)
    n = len(result.tokens)
    with pytest.raises(PositionOutOfRangeError, match="token"):
        neuron_view_of(result, 0, 0, n)
    with pytest.raises(PositionOutOfRangeError, match="head"):
        neuron_view_of(result, 0, NUM_HEADS, 0)
    dense = dataclasses.replace(result, attention_stacks={"self": result.attentions})
    with pytest.raises(NeuronViewUnsupportedError, match=r"core\.neuron_view"):
        neuron_view_of(dense, 0, 0, 0)
