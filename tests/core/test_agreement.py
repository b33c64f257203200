"""Leave-one-out ground truth and each method's agreement with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import core
from tests.core.methods.references import perturb

MASKED = "The researchers [MASK] attention patterns."
PLAIN = "The researchers visualized attention patterns"


@pytest.fixture(scope="module")
def models(tiny_model_path):
    loaded = {}
    for family in ("bert", "gpt2"):
        model = core.load_model(str(tiny_model_path(family)))
        perturb(model.model)
        loaded[family] = model
    return loaded


def probability(model, ids, position, token):
    with torch.no_grad():
        logits = model.model(input_ids=torch.tensor([ids])).logits[0, position]
    return float(logits.double().softmax(-1)[token])


def test_masked_lm_replaces_each_word_by_the_mask(models):
    model = models["bert"]
    truth = core.leave_one_out(model, MASKED, 3)
    ids = core.inference.encode(model, MASKED).input_ids[0].tolist()
    predicted = truth.attrs["predicted_id"]
    assert truth.attrs["perturbation"] == "mask"
    assert 0 not in truth.position.values and 3 not in truth.position.values  # [CLS], target
    for row in truth.itertuples():
        variant = list(ids)
        variant[row.position] = model.tokenizer.mask_token_id
        expected = probability(model, variant, 3, predicted)
        assert row.probability_without == pytest.approx(expected, rel=1e-5)
        assert row.drop == pytest.approx(truth.attrs["probability"] - expected, abs=1e-7)


def test_causal_lm_removes_each_token(models):
    model = models["gpt2"]
    truth = core.leave_one_out(model, PLAIN, 4)
    ids = core.inference.encode(model, PLAIN).input_ids[0].tolist()[:5]
    predicted = truth.attrs["predicted_id"]
    assert truth.attrs["perturbation"] == "remove"
    assert truth.position.tolist() == [0, 1, 2, 3, 4]
    for row in truth.itertuples():
        variant = ids[: row.position] + ids[row.position + 1 :]
        expected = probability(model, variant, 3, predicted)
        assert row.probability_without == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("family", "text", "position"), [("bert", MASKED, 3), ("gpt2", PLAIN, -1)])
def test_agreement_ranks_each_methods_row(models, family, text, position):
    model = models[family]
    table = core.explanation_agreement(model, text, position, methods=["raw", "alti"])
    assert list(table.columns) == [
        "method",
        "label",
        "attribution",
        "spearman",
        "top_k_overlap",
        "k",
        "tokens_compared",
    ]
    truth = table.attrs["leave_one_out"]
    n = len(core.run_attention(model, text).tokens)
    alti = core.compute_method(model, text, "alti").rollout[-1, position % n]
    row = table.set_index("method").loc["alti"]
    assert row.attribution == "rollout, last layer"
    expected = spearmanr(alti[truth.position], truth["drop"]).statistic
    assert row.spearman == pytest.approx(expected)
    top_truth = set(truth.position[np.argsort(-truth["drop"].to_numpy(), kind="stable")[:3]])
    top_alti = set(truth.position[np.argsort(-alti[truth.position], kind="stable")[:3]])
    assert row.top_k_overlap == pytest.approx(len(top_truth & top_alti) / 3)
    assert table.set_index("method").loc["raw"].attribution == "last layer"


def test_agreement_needs_a_prediction(embedded):
    with pytest.raises(core.MethodUnsupportedError):
        core.explanation_agreement(embedded, "A cat sat.", 1)


def test_unknown_methods_fail_first(models):
    with pytest.raises(core.MethodUnsupportedError, match="no method"):
        core.explanation_agreement(models["bert"], MASKED, 3, methods=["magic"])


def test_leave_one_out_reports_its_batches_and_stops_when_told(models, monkeypatch):
    monkeypatch.setattr(core.agreement, "BATCH", 2)  # several batches from a short text
    model = models["bert"]
    seen = []
    truth = core.leave_one_out(model, MASKED, 3, progress=lambda d, t: seen.append((d, t)))
    variants = len(truth)
    assert variants > 2
    assert seen == [(min(d, variants), variants) for d in range(2, variants + 2, 2)]
    with pytest.raises(core.ComputationCancelled, match="Leave-one-out"):
        core.leave_one_out(model, MASKED, 3, progress=lambda d, t: d < 2)


def test_agreement_table_from_its_parts_equals_the_whole(models):
    model = models["gpt2"]
    steps = []
    whole = core.explanation_agreement(
        model, PLAIN, 4, methods=["raw", "alti"], progress=lambda d, t: steps.append((d, t))
    )
    assert steps == [(1, 3), (2, 3), (3, 3)]
    truth = core.leave_one_out(model, PLAIN, 4)
    parts = {m: core.agreement.method_attribution(model, PLAIN, 4, m) for m in ("raw", "alti")}
    scores, _ = parts["alti"]
    assert scores.base is None and scores.shape == (len(core.run_attention(model, PLAIN).tokens),)
    table = core.agreement.agreement_table(truth, parts)
    assert table.equals(whole)
    assert table.attrs["predicted"] == whole.attrs["predicted"]
    with pytest.raises(core.ComputationCancelled):
        core.explanation_agreement(model, PLAIN, 4, methods=["raw"], progress=lambda d, t: False)


def test_a_methods_progress_reaches_it_through_the_attribution(models):
    seen = []
    core.agreement.method_attribution(
        models["bert"], MASKED, 3, "value_zeroing", progress=lambda d, t: seen.append((d, t))
    )
    n = len(core.run_attention(models["bert"], MASKED).tokens)
    layers = models["bert"].num_layers
    assert seen[-1] == (layers * n, layers * n)
