import pytest
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

from core import (
    EmptyTextError,
    NoMaskedLMHeadError,
    NoMaskError,
    PositionOutOfRangeError,
    predict_masked,
    run_attention,
)

MLM_FAMILIES = ("bert", "roberta", "distilbert", "albert")


def _oracle(path, text, top_k):
    """transformers' own fill-mask pipeline on an independently loaded copy of the model."""
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForMaskedLM.from_pretrained(str(path), attn_implementation="eager")
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, device="cpu")
    output = fill(text.replace("[MASK]", tokenizer.mask_token), top_k=top_k)
    return [output] if isinstance(output[0], dict) else output


@pytest.mark.parametrize("family", MLM_FAMILIES)
@pytest.mark.parametrize(
    "text",
    ["The cat sat on the [MASK].", "The [MASK] sat on the [MASK] near the river."],
)
def test_predictions_equal_fill_mask_pipeline(loaded_tiny, tiny_model_path, family, text):
    ours = predict_masked(loaded_tiny(family), text, top_k=7)
    expected = _oracle(tiny_model_path(family), text, top_k=7)
    assert len(ours) == len(expected) == text.count("[MASK]")
    for mask_ours, mask_expected in zip(ours, expected, strict=True):
        assert [p.token_id for p in mask_ours] == [e["token"] for e in mask_expected]
        for prediction, entry in zip(mask_ours, mask_expected, strict=True):
            spelled = entry["token_str"].strip()
            if "\ufffd" in spelled:  # part of a character: shown as its bytes instead
                assert prediction.token.startswith("<0x") and "\ufffd" not in prediction.token
            else:
                assert prediction.token == spelled
        for prediction, entry in zip(mask_ours, mask_expected, strict=True):
            assert prediction.score == pytest.approx(entry["score"], abs=1e-6)
        scores = [p.score for p in mask_ours]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("family", ["bert", "roberta", "albert"])
def test_both_mask_spellings_are_accepted(loaded_tiny, family):
    model = loaded_tiny(family)
    a = predict_masked(model, "The cat sat on the [MASK].")
    b = predict_masked(model, "The cat sat on the <mask>.")
    assert a == b


def test_same_pass_serves_attention_and_predictions(loaded_tiny):
    model = loaded_tiny("bert")
    text = "The [MASK] sat on the [MASK]."
    result = run_attention(model, text, top_k=3)
    alone = predict_masked(model, text, top_k=3)
    # run_attention's pass captures (flash kernel, normalisers on the way) and predict_masked
    # runs plain SDPA: the same tokens, with probabilities equal to float32 rounding.
    assert [[p.token_id for p in mask] for mask in result.predictions] == [
        [p.token_id for p in mask] for mask in alone
    ]
    for ours, theirs in zip(result.predictions, alone, strict=True):
        assert [p.score for p in ours] == pytest.approx([p.score for p in theirs], rel=1e-5)


def test_prediction_at_a_position_equals_typing_the_mask(loaded_tiny):
    model = loaded_tiny("bert")
    tokens = run_attention(model, "the cat sat on the mat").tokens
    position = next(t.index for t in tokens if t.text == "mat")
    at_position = predict_masked(model, "the cat sat on the mat", position=position)
    typed = predict_masked(model, "the cat sat on the [MASK]")
    assert len(at_position) == 1
    assert [p.token_id for p in at_position[0]] == [p.token_id for p in typed[0]]
    assert at_position[0][0].score == pytest.approx(typed[0][0].score, abs=1e-6)


def test_encoder_without_head_cannot_predict(embedded):
    with pytest.raises(NoMaskedLMHeadError, match="bert-base-uncased"):
        predict_masked(embedded, "The [MASK] sat.")
    # Attention still works for the same text.
    assert run_attention(embedded, "The [MASK] sat.").predictions == []


def test_text_without_mask(loaded_tiny):
    with pytest.raises(NoMaskError, match=r"\[MASK\]"):
        predict_masked(loaded_tiny("bert"), "No mask here.")


def test_masks_beyond_the_limit(loaded_tiny):
    model = loaded_tiny("bert")
    with pytest.raises(NoMaskError, match="beyond"), pytest.warns(UserWarning):
        predict_masked(model, "word " * (model.max_length + 10) + "[MASK]")


def test_empty_text(loaded_tiny):
    with pytest.raises(EmptyTextError):
        predict_masked(loaded_tiny("bert"), "  ")


@pytest.mark.parametrize("position", [-1, 0, 7, 1000])
def test_mask_position_out_of_range_or_special(loaded_tiny, position):
    # "the cat sat" -> [CLS] the cat sat [SEP]: 0 and 4 are special, 5+ out of range.
    position = {7: 4}.get(position, position)
    with pytest.raises(PositionOutOfRangeError):
        predict_masked(loaded_tiny("bert"), "the cat sat", position=position)


def test_predictions_run_the_fast_attention_only(loaded_tiny, monkeypatch):
    # No eager attention anywhere in the pass: a text's predictions never build the n² weights.
    import core.capture

    def no_eager(*args, **kwargs):
        raise AssertionError("predict_masked ran the eager attention")

    model = loaded_tiny("roberta")
    expected = predict_masked(model, "The cat sat on the [MASK].", top_k=4)
    monkeypatch.setattr(core.capture, "_eager", no_eager)
    assert predict_masked(model, "The cat sat on the [MASK].", top_k=4) == expected
