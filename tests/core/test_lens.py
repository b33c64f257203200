"""The logit lens: each layer's residual stream through the final norm and the LM head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import core
from tests.core.methods.references import perturb

MASKED = "The researchers [MASK] attention patterns."
PLAIN = "The researchers visualized attention patterns"


@pytest.fixture(scope="module")
def models(tiny_model_path):
    loaded = {}
    for family in ("bert", "gpt2", "distilbert", "llama", "gemma2", "phi3"):
        model = core.load_model(str(tiny_model_path(family)))
        perturb(model.model)
        loaded[family] = model
    return loaded


def reference_lens(model, text, position, top_k):
    """Top-k per layer computed directly from the model's modules."""
    encoded = core.inference.encode(model, text)
    network = model.model
    with torch.no_grad():
        output = network(**encoded.inputs, output_hidden_states=True)
        rows = []
        for layer, hidden in enumerate(output.hidden_states):
            vector = hidden[0, position]
            if hasattr(network, "model") and hasattr(network.model, "rotary_emb"):
                # Rotary decoders: final RMSNorm, lm_head, Gemma's final soft-cap.
                last = layer == len(output.hidden_states) - 1
                logits = network.lm_head(vector if last else network.model.norm(vector))
                cap = getattr(network.config, "final_logit_softcapping", None)
                if cap is not None:
                    logits = cap * torch.tanh(logits / cap)
            elif type(network).__name__.startswith("GPT2"):
                last = layer == len(output.hidden_states) - 1
                logits = network.lm_head(vector if last else network.transformer.ln_f(vector))
            elif type(network).__name__.startswith("DistilBert"):
                h = network.vocab_layer_norm(network.activation(network.vocab_transform(vector)))
                logits = network.vocab_projector(h)
            else:
                logits = network.cls(vector[None])[0]
            top = logits.double().softmax(-1).topk(top_k)
            rows.append((top.indices.tolist(), top.values.numpy()))
    return rows


@pytest.mark.parametrize(
    ("family", "text", "position"),
    [
        ("bert", MASKED, 3),
        ("distilbert", MASKED, 3),
        ("gpt2", PLAIN, -1),
        ("llama", PLAIN, -1),
        ("gemma2", PLAIN, 2),
        ("phi3", PLAIN, -1),
    ],
)
def test_lens_matches_the_modules(models, family, text, position):
    model = models[family]
    table = core.logit_lens(model, text, position, top_k=4)
    reference = reference_lens(model, text, position, 4)
    assert list(table.columns) == ["layer", "rank", "token", "token_id", "probability"]
    assert len(table) == 4 * (model.num_layers + 1)
    for layer, (ids, probabilities) in enumerate(reference):
        rows = table[table.layer == layer].sort_values("rank")
        assert rows.token_id.tolist() == ids
        np.testing.assert_allclose(rows.probability, probabilities, rtol=1e-5)


def test_last_layer_is_the_models_prediction(models):
    model = models["bert"]
    table = core.logit_lens(model, MASKED, 3, top_k=1)
    prediction = core.predict_masked(model, MASKED, top_k=1)[0][0]
    assert table.iloc[-1].token_id == prediction.token_id


def test_bad_inputs_are_atlas_errors(models, embedded):
    with pytest.raises(core.PositionOutOfRangeError):
        core.logit_lens(models["bert"], MASKED, 99)
    with pytest.raises(core.UnsupportedModelError, match="logit lens"):
        core.logit_lens(embedded, "A cat.", 1)
