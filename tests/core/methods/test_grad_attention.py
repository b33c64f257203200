"""grad_attention equals Chefer et al.'s generic relevance, and leaves the model untouched."""

from __future__ import annotations

import numpy as np
import pytest

import core
from tests.core.methods import references
from tests.core.methods.conftest import MASKED_TEXT, TEXT
from tests.tiny_models import MODERN_FAMILIES

CASES = (
    ("bert", MASKED_TEXT),
    ("roberta", MASKED_TEXT.replace("[MASK]", "<mask>")),
    ("albert", MASKED_TEXT),
    ("distilbert", MASKED_TEXT),
    ("bert-encoder", TEXT),
    ("gpt2", TEXT),
    *((family, TEXT) for family in MODERN_FAMILIES),
)


@pytest.mark.parametrize(("family", "text"), CASES)
def test_grad_attention_matches_the_reference(perturbed_model, family, text):
    model = perturbed_model(family)
    result = core.compute_method(model, text, "grad_attention")
    from core.methods.grad_attention import default_target

    position = default_target(
        core.MethodRequest(result=core.run_attention(model, text), model=model)
    )
    cams, rolled = references.chefer_relevance(model, text, position)
    scale = max(1.0, np.abs(rolled).max())
    np.testing.assert_allclose(result.per_layer, cams, atol=1e-5 * scale)
    np.testing.assert_allclose(result.rollout, rolled, atol=1e-5 * scale)
    assert np.abs(result.per_layer).sum() > 0  # a target that moved nothing tests nothing


def test_targets_default_to_the_prediction(perturbed_model):
    bert = perturbed_model("bert")
    masked = core.compute_method(bert, MASKED_TEXT, "grad_attention")
    mask = core.run_attention(bert, MASKED_TEXT).mask_positions[0]
    assert f"at position {mask}" in masked.notes[0]
    gpt2 = perturbed_model("gpt2")
    last = len(core.run_attention(gpt2, TEXT).tokens) - 1
    assert f"at position {last}" in core.compute_method(gpt2, TEXT, "grad_attention").notes[0]
    chosen = core.compute_method(gpt2, TEXT, "grad_attention", target=2)
    assert "at position 2" in chosen.notes[0]
    with pytest.raises(core.InvalidSelectionError):
        core.compute_method(gpt2, TEXT, "grad_attention", target=99)


def test_the_shared_model_stays_frozen(perturbed_model):
    model = perturbed_model("bert")

    def hooks():  # transformers keeps hooks of its own; ours would add to them
        return [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.model.modules()
        ]

    before = hooks()
    core.compute_method(model, MASKED_TEXT, "grad_attention")
    assert all(not p.requires_grad and p.grad is None for p in model.model.parameters())
    assert hooks() == before


@pytest.mark.parametrize("family", ["bart", "t5"])
@pytest.mark.parametrize("position", [None, 2])
def test_encoder_decoder_relevance_matches_the_reference(perturbed_model, family, position):
    model = perturbed_model(family)
    target_text = "A dog ran in the park."
    decoder = core.run_attention(model, TEXT, target_text=target_text).decoder_tokens
    t = len(decoder) - 1 if position is None else position
    expected = references.chefer_encoder_decoder_relevance(model, TEXT, target_text, t)
    assert "grad_attention" in core.list_methods(model, "cross")
    for stack, (cams, rolled) in expected.items():
        result = core.compute_method(
            model, TEXT, "grad_attention", stack=stack, target_text=target_text, target=position
        )
        shown = (slice(None), *(slice(0, size) for size in cams.shape[1:]))
        scale = max(1.0, np.abs(rolled).max())
        np.testing.assert_allclose(result.per_layer[shown], cams, atol=1e-5 * scale)
        np.testing.assert_allclose(result.rollout[shown], rolled, atol=1e-5 * scale)
        assert np.abs(cams).sum() > 0 and np.abs(rolled).sum() > 0
        if stack != "self":  # rows after the target are not run: nothing there
            assert result.per_layer.shape[1] == len(decoder)
            assert not result.rollout[:, t + 1 :].any()
            assert f"at position {t} of the decoder" in result.notes[0]
    cross = core.compute_method(
        model, TEXT, "grad_attention", stack="cross", target_text=target_text, target=position
    )
    assert cross.rollout[-1, t].sum() > 0  # the cross rule reached the target's row
