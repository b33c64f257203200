"""Markdown escaping of text visitors and links can write (checked in Chromium end to end)."""

import pytest

from ui.text import clip, plain

JOINER = "\u2060"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Log in](x)", "\\[Log in\\]\\(x\\)"),
        (
            "![](y) *b* `c` $x$ :red[z]",
            f"\\!\\[\\]\\(y\\) \\*b\\* \\`c\\` \\$x\\$ {JOINER}\\:red\\[z\\]",
        ),
        ("www.example.org", f"www{JOINER}.example.org"),
        ("WWW.example.org", f"WWW{JOINER}.example.org"),
        ("http://example.org", f"http{JOINER}\\://example.org"),
        ("me@example.org", f"me{JOINER}@example.org"),
        ("two\nlines\x00", "two lines "),
    ],
)
def test_plain_escapes_markup_and_autolinks(text, expected):
    assert plain(text) == expected


def test_plain_shows_the_same_characters():
    text = "http://www.example.org/a_b?c=[d] me@x.org"
    shown = plain(text).replace(JOINER, "").replace("\\", "")
    assert shown == text


def test_clip():
    assert clip("short") == "short"
    assert clip("x" * 50, 10) == "x" * 9 + "…"
