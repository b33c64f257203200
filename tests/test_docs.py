"""The documentation a newcomer reads: a short README, and no relative link that leads nowhere.

Every relative link and image in README.md and docs/ must name a file or folder of the
repository, and a `#fragment` must name a heading of the Markdown file it points to (GitHub's
anchor rule). Links inside code are not links and are ignored.
"""

from __future__ import annotations

import inspect
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_MAX_BYTES = 12_000
"""Issue 20 item 5: the README is at most 12 KB; the rest lives in docs/."""

PENDING: dict[str, str] = {}
"""Pages other branches of the same session write. A link to one of them is accepted while the
file is missing; once it exists it is checked like any other. Empty this set when they land."""

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


def documents() -> list[Path]:
    return [README, *sorted((REPO / "docs").rglob("*.md"))]


def _prose(text: str) -> str:
    """The Markdown without fenced or inline code, where brackets are not links."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    return _LINK.findall(_prose(text))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    kept = "".join(
        ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N", "M")
    )
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for _, heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = anchor(heading)
        name, n = base, 0
        while name in found:  # GitHub numbers repeated headings: x, x-1, x-2 …
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def broken_links(document: Path, root: Path = REPO) -> list[str]:
    """Each relative link of `document` that does not resolve inside `root`, with the reason."""
    root = root.resolve()
    problems = []
    for target in links(document.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # https:, mailto: … are not relative
        path_part, _, fragment = target.partition("#")
        resolved = (document.parent / unquote(path_part)).resolve() if path_part else document
        relative = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else None
        if relative is None:
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            if relative not in PENDING:
                problems.append(f"{target}: no file {relative}")
        elif fragment and resolved.suffix == ".md" and unquote(fragment) not in anchors(resolved):
            problems.append(f"{target}: no heading #{fragment} in {relative}")
    return problems


def test_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size:,} bytes (at most {README_MAX_BYTES:,}): move detail to docs/"
    )


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(document: Path) -> None:
    assert broken_links(document) == []


def test_docs_index_links_every_page() -> None:
    index = REPO / "docs" / "README.md"
    linked = {
        (index.parent / target.partition("#")[0]).resolve()
        for target in links(index.read_text(encoding="utf-8"))
    }
    pages = {p.resolve() for p in documents() if p.parent != REPO and p != index}
    assert sorted(str(p.relative_to(REPO)) for p in pages - linked) == []


# The checker itself, on small documents: it must be able to fail.


def test_checker_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("# Index\n", encoding="utf-8")
    doc = tmp_path / "docs" / "probe.md"
    doc.write_text(
        "# Probe\n\n## A heading, with `code`\n\n"
        "[ok](#a-heading-with-code) [ok2](README.md#index) [gone](nowhere.md) "
        "[bad anchor](README.md#no-such-heading) ![img](screenshots/none.png) "
        "[out](../../elsewhere.md) [web](https://example.org/x.md) "
        "`[in code](nowhere-either.md)`\n\n"
        "```\n[fenced](fenced-nowhere.md)\n```\n",
        encoding="utf-8",
    )
    problems = broken_links(doc, root=tmp_path)
    assert problems == [
        "nowhere.md: no file docs/nowhere.md",
        "README.md#no-such-heading: no heading #no-such-heading in docs/README.md",
        "screenshots/none.png: no file docs/screenshots/none.png",
        "../../elsewhere.md: outside the repository",
    ]


def test_anchor_follows_github() -> None:
    assert anchor("What each model family shows") == "what-each-model-family-shows"
    assert anchor("Deploying and public mode") == "deploying-and-public-mode"
    assert anchor("Attention rollout and attention flow") == "attention-rollout-and-attention-flow"
    assert anchor("`core.corpus` from Python") == "corecorpus-from-python"
    assert anchor("Layer / head (11)") == "layer--head-11"


# The API reference: every public name of `core` is in docs/api.md, each function once with
# the signature the code has.

API_DOC = REPO / "docs" / "api.md"


def signature_text(name: str, function: object) -> str:
    """`name(params) -> result` as docs/api.md writes it: annotations unquoted."""
    text = f"{name}{inspect.signature(function)}"  # type: ignore[arg-type]
    return re.sub(r"(: |-> )'([^']*)'", r"\1\2", text)


def test_api_reference_lists_each_function_once_with_its_signature() -> None:
    import core

    doc = API_DOC.read_text(encoding="utf-8").replace("\\|", "|")
    problems = []
    for name in core.__all__:
        value = getattr(core, name)
        if inspect.isfunction(value):
            written = signature_text(name, value)
            if doc.count(f"`{written}`") != 1:
                problems.append(f"{written}: written {doc.count(f'`{written}`')} times")
            rows = doc.count(f"\n| `{name}(")
            if rows != 1:
                problems.append(f"{name}: {rows} table rows")
        elif f"`{name}`" not in doc and f"`{name}," not in doc:
            problems.append(f"{name}: not in docs/api.md")
    assert problems == []
