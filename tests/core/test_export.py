import io
import json

import numpy as np
import pandas as pd
import pytest

from core import attention_csv, attention_data, attention_json


def test_json_has_the_seed_api_layout():
    attention = np.random.default_rng(1).dirichlet(np.ones(3), size=(2, 2, 3))
    payload = json.loads(attention_json(["[CLS]", "hi", "[SEP]"], attention))
    data = payload["attention_data"]
    assert data["tokens"][1] == {"text": "hi", "index": 1}
    assert [layer["layerIndex"] for layer in data["layers"]] == [0, 1]
    head = data["layers"][1]["heads"][0]
    assert head["headIndex"] == 0
    np.testing.assert_allclose(head["attention"], attention[1, 0], atol=1e-6)


def test_subset_keeps_original_indices_and_rollout_is_one_head():
    rollout = np.ones((1, 2, 2)) / 2
    data = attention_data(["a", "b"], rollout, layer_ids=[5], method="rollout")
    assert data["method"] == "rollout"
    assert data["layers"][0]["layerIndex"] == 5
    assert len(data["layers"][0]["heads"]) == 1


def test_csv_long_format_round_trips():
    attention = np.random.default_rng(2).dirichlet(np.ones(3), size=(2, 2, 3)).astype(np.float32)
    frame = pd.read_csv(io.StringIO(attention_csv(["a", "b", "a"], attention, head_ids=[4, 7])))
    assert len(frame) == 2 * 2 * 3 * 3
    row = frame[(frame.layer == 1) & (frame["head"] == 7) & (frame.query_index == 2)]
    np.testing.assert_allclose(row.weight.to_numpy(), attention[1, 1, 2], rtol=1e-6)
    assert list(row.key_token) == ["a", "b", "a"]


def test_label_count_must_match():
    with pytest.raises(ValueError):
        attention_data(["a"], np.ones((1, 1, 2, 2)))


def test_cross_attention_exports_target_rows_and_source_keys():
    cross = np.random.default_rng(0).random((2, 3, 2, 4))  # [layers, heads, target, source]
    data = attention_data(["t0", "t1"], cross, key_labels=["s0", "s1", "s2", "s3"])
    assert [t["text"] for t in data["tokens"]] == ["t0", "t1"]
    assert [t["text"] for t in data["keyTokens"]] == ["s0", "s1", "s2", "s3"]
    assert np.asarray(data["layers"][1]["heads"][2]["attention"]).shape == (2, 4)
    frame = pd.read_csv(io.StringIO(attention_csv(["t0", "t1"], cross, key_labels=list("abcd"))))
    assert len(frame) == 2 * 3 * 2 * 4
    last = frame.iloc[-1]
    assert (last["query_token"], last["key_token"]) == ("t1", "d")
    assert last["weight"] == pytest.approx(cross[1, 2, 1, 3], rel=1e-6)
    with pytest.raises(ValueError):
        attention_data(["t0", "t1"], cross)  # not square: needs its key labels
    with pytest.raises(ValueError, match="key labels"):
        attention_data(["t0", "t1"], cross, key_labels=["s0"])
