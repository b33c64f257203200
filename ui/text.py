"""Text shown to visitors: Markdown escaping for anything a visitor or a link can write."""

from __future__ import annotations

import re

# Everything Streamlit's Markdown gives a meaning to, including ':' (emoji and colour
# directives) and '$' (LaTeX).
_MARKUP = re.compile(r"([\\`*_{}\[\]()<>#+!|$~:&])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Streamlit's Markdown turns bare `www.host`, `scheme://…` and `user@host` into links by
# itself, and a backslash escape does not stop it (tried in Chromium: `http\\://` and
# `www\\.` still become links). An invisible word joiner (U+2060) before ':' and '@' and
# after a 'www' breaks the pattern and shows nothing.
_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(?<=www)(?=\\?\.)|(?<!\\)(?=\\?[:@])")


def plain(text: str) -> str:
    """`text` with Markdown, LaTeX and colour-directive syntax escaped, on one line.

    Error messages quote what a visitor typed (a model name from a shared link, say), and
    st.error renders Markdown: unescaped, `[Log in](https://…)` would show as a link, and a
    bare `www.example.org` or `http://…` as a clickable address.
    """
    one_line = _CONTROL.sub(" ", text)
    escaped = _MARKUP.sub(r"\\\1", one_line)
    return _AUTOLINK.sub(_JOINER, escaped)


def clip(text: str, limit: int = 40) -> str:
    """`text` cut to `limit` characters with an ellipsis, for quoting a link's value."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
