import io
import json
import re
import tomllib

import numpy as np
import pandas as pd
import pytest

import core
from core import attention_csv, attention_data, attention_json
from core.export import (
    Provenance,
    csv_with_provenance,
    export_file_name,
    json_with_provenance,
    read_csv_with_provenance,
)


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


# --- provenance and file names ------------------------------------------------------------------

PROVENANCE = Provenance(
    model="sentence-transformers/all-MiniLM-L6-v2",
    text='The "cat"\nsat, #1',
    pair="It slept.",
    method="rollout",
    layer=3,
    head="mean",
    stack="self",
    hide_special=True,
    merge_words=True,
)
FIELDS = {
    "model",
    "text",
    "pair",
    "method",
    "layer",
    "head",
    "stack",
    "hide_special",
    "merge_words",
    "app",
    "app_version",
    "numbering",
}


def test_version_matches_pyproject():
    with open("pyproject.toml", "rb") as handle:
        assert tomllib.load(handle)["project"]["version"] == core.__version__
    assert PROVENANCE.app_version == core.__version__


def test_json_export_carries_provenance():
    attention = np.random.default_rng(1).dirichlet(np.ones(2), size=(1, 2, 2))
    data = json.loads(attention_json(["a", "b"], attention, provenance=PROVENANCE))
    provenance = data["attention_data"]["provenance"]
    assert set(provenance) == FIELDS
    assert provenance["text"] == PROVENANCE.text and provenance["pair"] == "It slept."
    assert (provenance["layer"], provenance["head"], provenance["method"]) == (3, "mean", "rollout")
    assert provenance["hide_special"] is True and provenance["merge_words"] is True
    assert provenance["numbering"] == "0-based layers and heads"
    # Without provenance the seed API layout is unchanged.
    assert "provenance" not in attention_data(["a", "b"], attention)


def test_csv_export_has_a_provenance_header_pandas_can_skip():
    attention = np.random.default_rng(2).dirichlet(np.ones(2), size=(1, 1, 2))
    labels = ["#hash", "b,c"]  # a "#" inside the table must not be read as a comment
    text = attention_csv(labels, attention, provenance=PROVENANCE)
    first = text.split("\n", 1)[0]
    skip = int(first.rsplit("skiprows=", 1)[1].rstrip(")"))
    frame = pd.read_csv(io.StringIO(text), skiprows=skip)
    assert list(frame.query_token) == ["#hash", "#hash", "b,c", "b,c"]
    fields, table = read_csv_with_provenance(text)
    assert set(fields) == FIELDS
    assert fields["text"] == PROVENANCE.text  # newline and quotes survive the header
    assert table == attention_csv(labels, attention)
    assert read_csv_with_provenance(table) == ({}, table)


def test_any_table_can_carry_provenance():
    rows = [{"mask": 0, "rank": 0, "token": "mat", "score": 0.5}]
    wrapped = json.loads(json_with_provenance(rows, PROVENANCE))
    assert wrapped["data"] == rows and wrapped["provenance"]["model"] == PROVENANCE.model
    fields, table = read_csv_with_provenance(csv_with_provenance("mask,token\n0,mat\n", PROVENANCE))
    assert fields["method"] == "rollout" and table == "mask,token\n0,mat\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("sentence-transformers/all-MiniLM-L6-v2", "raw", 3, 7, "self", "csv"),
            "attention_all-MiniLM-L6-v2_raw_L3_H7.csv",
        ),
        (
            ("facebook/bart-base", "raw", 0, "mean", "cross", ".json"),
            "attention_bart-base_raw_cross_L0_H-mean.json",
        ),
        (
            ("/home/me/my models/Fancy BERT!!/", "rollout", None, None, "self", "zip"),
            "attention_Fancy-BERT_rollout_all-layers_all-heads.zip",
        ),
        (
            ("C:\\models\\gpt2", "flow", 11, 0, "decoder_self", "png"),
            "attention_gpt2_flow_decoder_self_L11_H0.png",
        ),
    ],
)
def test_export_file_names_are_descriptive_and_safe(args, expected):
    name = export_file_name(*args)
    assert name == expected
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name)


def test_export_file_name_of_hostile_input_stays_safe():
    name = export_file_name(
        "../../etc/<passwd> ;rm -rf", "raw$(x)", 1, 2, "self", "c/sv", kind="a b"
    )
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name)
    assert ".." not in name.split("_")[1] and "/" not in name
