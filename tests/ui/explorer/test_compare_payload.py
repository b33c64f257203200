"""The explorer's compare mode: panels with link units, in one binary message, checked."""

import numpy as np
import pytest

from core.errors import InvalidSelectionError
from ui.explorer.payload import (
    build_compare_payload,
    build_payload,
    decode_codes,
    link_panel,
    pack_compare,
    unpack_compare,
)


def panel(n: int, title: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    heads = rng.dirichlet(np.ones(n), size=(2, n)).astype(np.float32)
    payload = build_payload(heads, [f"t{i}" for i in range(n)], mean=heads.mean(0), title=title)
    return payload


def test_panels_travel_with_their_link_units_and_bytes_in_one_message():
    before = link_panel(panel(4, "Before"), [0, 1, 2, 3], [0, 1, 2, 3], notes=["a note"])
    after = link_panel(panel(5, "After", 1), [0, 1, 1, 2, 3], [0, 1, 3, 4])
    payload = build_compare_payload([before, after], link="words", units=4, caption="shared")
    back = unpack_compare(pack_compare(payload))
    assert back["compare"] == {"link": "words", "units": 4, "caption": "shared"}
    assert [p["title"] for p in back["panels"]] == ["Before", "After"]
    assert back["panels"][1]["rowUnit"] == [0, 1, 1, 2, 3]
    assert back["panels"][1]["unitRow"] == [0, 1, 3, 4]
    assert back["panels"][0]["notes"] == ["a note"]
    for sent, received in zip(payload["panels"], back["panels"], strict=True):
        assert received["codes"] == sent["codes"] and received["exact"] == sent["exact"]
        np.testing.assert_array_equal(decode_codes(received), decode_codes(sent))


def test_a_compare_payload_is_checked():
    good = link_panel(panel(3, "A"), [0, 1, 2], [0, 1, 2])
    with pytest.raises(InvalidSelectionError):
        link_panel(panel(3, "A"), [0, 1], [0, 1, 2])  # a row without its unit
    with pytest.raises(InvalidSelectionError):
        link_panel(panel(3, "A"), [0, 1, 2], [0, 5, 2])  # no row 5
    with pytest.raises(InvalidSelectionError):
        build_compare_payload([good, good], link="tokens", units=3)
    with pytest.raises(InvalidSelectionError):
        build_compare_payload([good], link="words", units=3)
    with pytest.raises(InvalidSelectionError):
        build_compare_payload([good, good], link="words", units=4)  # units the panels lack
    other_heads = link_panel(
        build_payload(np.ones((3, 3, 3), np.float32) / 3, ["a", "b", "c"]), [0, 1, 2], [0, 1, 2]
    )
    with pytest.raises(InvalidSelectionError):
        build_compare_payload([good, other_heads], link="words", units=3)
