"""The typed view state and its codec: one place that parses, validates, clamps and writes links.

`ViewState` is everything a view depends on; every control of every page is one of its fields,
so every control round-trips through the link. The codec is pure (no Streamlit):

* `decode(params)` reads a link's query parameters: types and names (a whole number, a known
  method, a known stack; legacy stack names map to today's);
* `clamp(view, shape)` checks indices against what the model and text have (layers, heads,
  tokens, stacks, methods, words);
* `encode(view)` writes the link, leaving defaults out;
* `to_view_file` / `from_view_file` write and read the same state as a small JSON file, for a
  text too long for a link.

Every problem comes back as a message for people, already escaped for Markdown (the values
quoted come from links anyone can write), and the state falls back to the nearest valid value.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import core
from core.corpus import BUNDLED_CORPORA, MODES
from core.families import DECODER_SELF, SELF, STACKS
from core.retrieval import DEFAULT_DEPTHS
from core.sinks import DEFAULT_SINK_EPSILON, DEFAULT_SINK_WINDOW
from ui.text import clip, plain

DEFAULT_TEXT = "The cat sat on the mat because it was tired."
MAX_URL_TEXT = 1500
"""Texts longer than this (text, pair and target together) are left out of the link: browsers
and proxies cut long links. The page says so and offers the view as a file instead."""
HEADS = ("mean", "all")
"""Head choices besides a head's number: the mean of a layer's heads, all heads as lines."""
SCALES = ("chart", "shared", "fixed")
"""Colour scales: each chart to its own maximum, one scale for compared charts, fixed 0–1."""
PAGE_SCALES = {"compare": "shared", "attention": "shared"}
"""A page's default colour scale where it is not "chart" (on the Attention page "shared" spans
the model's heads and layers, so a flat head does not look as bright as a sharp one)."""
PAGES = ("attention", "overview", "masked", "compare", "explain", "corpus", "long_context")
LEGACY_STACKS = {"encoder": SELF, "decoder": DECODER_SELF}
"""Stack names of links made before the stacks were named by what they are."""
MAX_EDGES = 20
MAX_THRESHOLD = 0.5
MAX_TOP_K = 10
MAX_GENERATE = 20
VIEW_FILE_KIND = "attention-atlas view"
CORPUS_SOURCES = (*BUNDLED_CORPORA, "paste", "upload")
"""Where the Corpus page's sentences come from: a bundled corpus, a pasted list, a file."""
MIN_CORPUS_TOKENS = 8
MAX_CORPUS_TOKENS = 512
MAX_CORPUS_SENTENCES = 100_000
SINK_MEASURES = (*core.SINK_COLUMNS, "retrieval")
"""What colours the Long context page's head map: a `core.sink_profile` column, or the mean
retrieval score of the needle run."""
HAYSTACKS = (*BUNDLED_CORPORA, "text")
"""The needle's haystack: a bundled corpus (its first sentences), or the sidebar's text."""
MAX_SINK_WINDOW = 8192
MIN_HAYSTACK_TOKENS = 32
MAX_HAYSTACK_TOKENS = 8192
MAX_DEPTHS = 11
MAX_ABLATE_K = 20
DEFAULT_NEEDLE = "The secret word that opens the old garden gate is lantern."
DEFAULT_QUESTION = "What is the secret word that opens the old garden gate?"

Head = int | str
"""A head's number, "mean" or "all"."""


@dataclass(frozen=True)
class ViewState:
    """What every page shows, as the sidebar, the controls and the link set it.

    Indices are 0-based, as the controls show them. None means "the page's default" where that
    depends on the input (e.g. fewer line-view edges for long inputs).
    """

    model: str = core.EMBEDDED_MODEL
    text: str = DEFAULT_TEXT
    pair: str = ""
    target: str = ""
    """An encoder-decoder model's decoder text; "" lets the model generate one."""
    page: str = "attention"
    """The page the view was made on; the link carries it in its path, a view file here."""
    stack: str = SELF
    layer: int = 0
    head: Head = "mean"
    method: str = "raw"
    token: int = 0
    """The selected token (a query row of the stack shown)."""
    hide_special: bool = False
    merge_words: bool = False
    scale: str = ""
    """"chart", "shared" or "fixed"; "" for the page's default (`PAGE_SCALES`)."""
    log_scale: bool = False
    """Heatmaps' colours on a log scale (`core.scales.LOG_DECADES` decades below the top)."""
    without_first: bool = False
    """Heatmaps without the first token, rows renormalised (`core.without_first_token`)."""
    edges: int | None = None
    """Line view: strongest edges per token (1–20); None: 20, or 3 for long inputs."""
    threshold: float = 0.0
    """Line view: smallest weight drawn (0–0.5)."""
    flow_chosen: bool | None = None
    """Flow for chosen tokens only; None: only for inputs longer than the full-flow default
    (`core.flow.FULL_FLOW_DEFAULT_MAX_TOKENS`)."""
    rows: tuple[int, ...] | None = None
    """The tokens flow is computed for when `flow_chosen`; None: the selected token."""
    neuron: bool = False
    own_max: bool = False
    """Overview: scale each thumbnail to its own maximum (else the colour scale in force)."""
    head_measure: str = ""
    """Overview: the per-head measure drawn under each thumbnail (`HEAD_MEASURES`); "": none."""
    """The neuron view is open."""
    word: int | None = None
    """Compare: the word index to replace; None: the first word."""
    replacement: str = ""
    second_model: str = ""
    """Compare: the model shown beside the sidebar's."""
    mask: int | None = None
    """Masked page: the token position masked when the text has no [MASK]."""
    top_k: int = 5
    """Masked page: predictions shown per mask (1–10)."""
    generate: int = 0
    """Masked page, causal models: tokens to generate (0: off, 1–20)."""
    graph_threshold: float = 0.04
    """Explain page: the smallest share of a row an edge of the contribution graph carries."""
    corpus: str = "austen"
    """Corpus page: a bundled corpus's name, "paste" or "upload" (`CORPUS_SOURCES`); the
    Corpus page's examples and global view use `layer` and `head`."""
    corpus_tokens: int = 64
    """Corpus page: tokens read per sentence (8–512, capped by the model and deployment)."""
    corpus_mode: str = "default"
    """Corpus page: "default" statistics or "clark" (Clark et al. 2019 conventions)."""
    corpus_sentences: int = 200
    """Corpus page: how many sentences of the corpus to measure (its first ones)."""
    sink_measure: str = "first_token_share"
    """Long context page: what colours the head map (`SINK_MEASURES`)."""
    sink_epsilon: float = DEFAULT_SINK_EPSILON
    """Long context page: a head is a sink when its first-token share exceeds this (0–1)."""
    sink_window: int = DEFAULT_SINK_WINDOW
    """Long context page: keys t − window + 1 … t are local to query t."""
    haystack: str = "austen"
    """Long context page: the needle's haystack (`HAYSTACKS`)."""
    haystack_tokens: int = 400
    """Long context page: tokens of a bundled corpus's haystack (its first sentences)."""
    needle: str = DEFAULT_NEEDLE
    question: str = DEFAULT_QUESTION
    depths: tuple[float, ...] = DEFAULT_DEPTHS
    """Long context page: shares of the haystack before the needle, each in 0–1."""
    needle_run: bool = False
    """Long context page: run the needle search (its scores and answer probabilities)."""
    ablate: bool = False
    """Long context page: ablate the three head sets (needs the needle run)."""
    ablate_k: int = 5
    """Long context page: how many top retrieval heads (and random heads) to ablate."""

    def colour_scale(self) -> str:
        """The colour scale in force on this view's page."""
        return self.scale or PAGE_SCALES.get(self.page, "chart")

    def text_in_link(self) -> bool:
        """Whether the texts are short enough to travel in a link."""
        return len(self.text) + len(self.pair) + len(self.target) <= MAX_URL_TEXT


DEFAULT = ViewState()

HEAD_MEASURES = tuple(core.STAT_DESCRIPTIONS) + tuple(
    name for name in core.SINK_COLUMNS if name != "is_sink"
)
"""Per-head measures the overview can draw under each thumbnail (`core.head_statistics`,
`core.sink_profile`)."""

# Fields carried in the query string (`page` is the link's path instead).
URL_FIELDS = tuple(f.name for f in fields(ViewState) if f.name != "page")
TEXT_FIELDS = ("text", "pair", "target")


@dataclass(frozen=True)
class Shape:
    """What the loaded model and text offer, for `clamp`.

    `tokens` counts the rows (queries) of the stack shown; `methods` the methods offered for
    it; `words` the word indices a replacement may target; `maskable` the token positions a
    visitor may mask (empty tuples: not checked on this page).
    """

    layers: int
    heads: int
    tokens: int
    stacks: tuple[str, ...] = (SELF,)
    methods: tuple[str, ...] = ()
    words: tuple[int, ...] = ()
    maskable: tuple[int, ...] = ()


# ------------------------------------------------------------------ decode
def _quoted(key: str, raw: str) -> str:
    # The value comes from a link anyone can write: escaped, so Markdown in it stays text.
    return f"'{plain(key)}={plain(clip(raw))}'"


def _as_int(key: str, raw: str, problems: list[str]) -> int | None:
    try:
        return int(raw.strip())
    except ValueError:
        problems.append(f"Ignored {_quoted(key, raw)} in the link: it must be a whole number.")
        return None


def _as_bool(key: str, raw: str, problems: list[str]) -> bool | None:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    problems.append(f"Ignored {_quoted(key, raw)} in the link: use 1 or 0.")
    return None


def _choice(key: str, raw: str, allowed: tuple[str, ...], problems: list[str]) -> str | None:
    if raw in allowed:
        return raw
    problems.append(f"Ignored {_quoted(key, raw)} in the link: use {', '.join(allowed)}.")
    return None


def _decode_field(key: str, raw: str, problems: list[str]) -> Any:
    """One parameter's typed value, or None when it cannot be read (a problem is added)."""
    if key in ("model", "text", "pair", "target", "replacement", "second_model"):
        return raw
    if key in ("needle", "question"):
        return raw
    if key in (
        "layer",
        "token",
        "edges",
        "word",
        "mask",
        "top_k",
        "generate",
        "corpus_tokens",
        "corpus_sentences",
        "sink_window",
        "haystack_tokens",
        "ablate_k",
    ):
        return _as_int(key, raw, problems)
    if key in ("needle_run", "ablate"):
        return _as_bool(key, raw, problems)
    if key in ("hide_special", "merge_words", "neuron", "flow_chosen", "own_max"):
        return _as_bool(key, raw, problems)
    if key in ("log_scale", "without_first"):
        return _as_bool(key, raw, problems)
    if key == "head":
        if raw in HEADS:
            return raw
        number = _as_int(key, raw, [])
        if number is None:
            problems.append(
                f"Ignored {_quoted('head', raw)} in the link: use a head's number, mean or all."
            )
        return number
    if key == "method":
        return _choice(key, raw, core.method_names(), problems)
    if key == "stack":
        return _choice(key, LEGACY_STACKS.get(raw, raw), STACKS, problems)
    if key == "scale":
        return _choice(key, raw, SCALES, problems)
    if key == "corpus":
        return _choice(key, raw, CORPUS_SOURCES, problems)
    if key == "corpus_mode":
        return _choice(key, raw, MODES, problems)
    if key == "sink_measure":
        return _choice(key, raw, SINK_MEASURES, problems)
    if key == "haystack":
        return _choice(key, raw, HAYSTACKS, problems)
    if key == "depths":
        try:
            return tuple(float(part) for part in raw.split(",") if part.strip())
        except ValueError:
            problems.append(f"Ignored {_quoted(key, raw)} in the link: use numbers like 0.1,0.5.")
            return None
    if key == "head_measure":
        return _choice(key, raw, HEAD_MEASURES, problems)
    if key in ("threshold", "graph_threshold", "sink_epsilon"):
        try:
            return float(raw)
        except ValueError:
            problems.append(f"Ignored {_quoted(key, raw)} in the link: it must be a number.")
            return None
    if key == "rows":
        numbers = [_as_int(key, part, problems) for part in raw.split(",") if part.strip()]
        return None if None in numbers else tuple(numbers)
    raise KeyError(key)


def decode(params: Mapping[str, str], page: str = DEFAULT.page) -> tuple[ViewState, list[str]]:
    """The view a link's query parameters describe, and the problems found in them.

    Unknown parameters are ignored (links may carry others); values that cannot be read keep
    their default. Ranges are checked by `clamp`, once the model is known.
    """
    problems: list[str] = []
    values: dict[str, Any] = {"page": page if page in PAGES else DEFAULT.page}
    for key in URL_FIELDS:
        raw = params.get(key)
        if raw is None:
            continue
        value = _decode_field(key, str(raw), problems)
        if value is not None:
            values[key] = value
    return ViewState(**values), problems


# ------------------------------------------------------------------ clamp
def _index_problem(what: str, value: object, count: int, fallback: str) -> str:
    have = f"{what}s 0–{count - 1}" if count > 1 else f"only {what} 0"
    return (
        f"{what.capitalize()} {plain(clip(str(value)))} does not exist here (there are {have}); "
        f"showing {fallback} instead."
    )


def _ignored(key: str, value: object, rule: str, fallback: object) -> str:
    if isinstance(value, tuple):
        value = ",".join(str(item) for item in value)
    return (
        f"Ignored {_quoted(key, str(value))} in the link: {rule}; showing "
        f"{plain(str(fallback))} instead."
    )


def clamp(view: ViewState, shape: Shape) -> tuple[ViewState, list[str]]:
    """`view` with every index inside `shape`, and a message for each value changed."""
    problems: list[str] = []
    changes: dict[str, Any] = {}
    if view.stack not in shape.stacks:
        changes["stack"] = SELF
        problems.append(
            _ignored("stack", view.stack, "this model has no such attention", "self-attention")
        )
    if not 0 <= view.layer < shape.layers:
        changes["layer"] = 0
        problems.append(_index_problem("layer", view.layer, shape.layers, "layer 0"))
    if isinstance(view.head, int) and not 0 <= view.head < shape.heads:
        changes["head"] = "mean"
        problems.append(_index_problem("head", view.head, shape.heads, "the mean of heads"))
    if not 0 <= view.token < shape.tokens:
        changes["token"] = 0
        problems.append(_index_problem("token", view.token, shape.tokens, "token 0"))
    if shape.methods and view.method not in shape.methods:
        changes["method"] = shape.methods[0]
        reason = core.get_method(view.method).label if view.method in core.method_names() else ""
        problems.append(
            f"{plain(reason or view.method)} is not offered for this attention; showing "
            f"{plain(shape.methods[0])}."
        )
    if view.rows is not None:
        kept = tuple(row for row in view.rows if 0 <= row < shape.tokens)
        if kept != view.rows:
            changes["rows"] = kept or None
            problems.append(
                _ignored("rows", view.rows, f"tokens go from 0 to {shape.tokens - 1}", "the rest")
            )
    if view.edges is not None and not 1 <= view.edges <= MAX_EDGES:
        changes["edges"] = min(max(view.edges, 1), MAX_EDGES)
        problems.append(_ignored("edges", view.edges, f"use 1–{MAX_EDGES}", changes["edges"]))
    if not 0.0 <= view.threshold <= MAX_THRESHOLD:  # also False for NaN
        changes["threshold"] = 0.0
        problems.append(_ignored("threshold", view.threshold, f"use 0–{MAX_THRESHOLD}", 0))
    if not 0.0 <= view.graph_threshold <= 1.0:  # also False for NaN
        changes["graph_threshold"] = DEFAULT.graph_threshold
        problems.append(
            _ignored("graph_threshold", view.graph_threshold, "use 0–1", DEFAULT.graph_threshold)
        )
    if not 1 <= view.top_k <= MAX_TOP_K:
        changes["top_k"] = DEFAULT.top_k
        problems.append(_ignored("top_k", view.top_k, f"use 1–{MAX_TOP_K}", DEFAULT.top_k))
    if not 0 <= view.generate <= MAX_GENERATE:
        changes["generate"] = 0
        problems.append(
            _ignored("generate", view.generate, f"at most {MAX_GENERATE} tokens", "no generation")
        )
    if not MIN_CORPUS_TOKENS <= view.corpus_tokens <= MAX_CORPUS_TOKENS:
        changes["corpus_tokens"] = min(
            max(view.corpus_tokens, MIN_CORPUS_TOKENS), MAX_CORPUS_TOKENS
        )
        rule = f"use {MIN_CORPUS_TOKENS}–{MAX_CORPUS_TOKENS}"
        problems.append(
            _ignored("corpus_tokens", view.corpus_tokens, rule, changes["corpus_tokens"])
        )
    if not 1 <= view.corpus_sentences <= MAX_CORPUS_SENTENCES:
        changes["corpus_sentences"] = DEFAULT.corpus_sentences
        rule = f"use 1–{MAX_CORPUS_SENTENCES:,}"
        problems.append(
            _ignored("corpus_sentences", view.corpus_sentences, rule, DEFAULT.corpus_sentences)
        )
    changes.update(_clamp_long_context(view, problems))
    if view.word is not None and shape.words and view.word not in shape.words:
        changes["word"] = None
        problems.append(
            _ignored("word", view.word, "this text has no such word to replace", "the first word")
        )
    if view.mask is not None and shape.maskable and view.mask not in shape.maskable:
        changes["mask"] = None
        problems.append(_ignored("mask", view.mask, "it is not a word of this text", "no mask"))
    return (dataclasses.replace(view, **changes) if changes else view), problems


def _clamp_long_context(view: ViewState, problems: list[str]) -> dict[str, Any]:
    """The Long context page's settings inside their ranges (none depends on the model)."""
    changes: dict[str, Any] = {}
    if not 0.0 <= view.sink_epsilon < 1.0:  # also False for NaN
        changes["sink_epsilon"] = DEFAULT.sink_epsilon
        problems.append(
            _ignored("sink_epsilon", view.sink_epsilon, "use 0–0.99", DEFAULT.sink_epsilon)
        )
    limits = {
        "sink_window": (1, MAX_SINK_WINDOW),
        "haystack_tokens": (MIN_HAYSTACK_TOKENS, MAX_HAYSTACK_TOKENS),
        "ablate_k": (1, MAX_ABLATE_K),
    }
    for key, (low, high) in limits.items():
        value = getattr(view, key)
        if not low <= value <= high:
            changes[key] = min(max(value, low), high)
            problems.append(_ignored(key, value, f"use {low:,}–{high:,}", changes[key]))
    depths = view.depths
    # No depth at all is the page's to say (a control emptied), not a link's mistake.
    if len(depths) > MAX_DEPTHS or not all(0.0 <= d <= 1.0 for d in depths):
        changes["depths"] = DEFAULT.depths
        rule = f"use at most {MAX_DEPTHS} numbers between 0 and 1"
        problems.append(_ignored("depths", depths, rule, ",".join(map(str, DEFAULT.depths))))
    return changes


# ------------------------------------------------------------------ encode
def _encode_field(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def encode(view: ViewState, *, with_text: bool | None = None) -> dict[str, str]:
    """The query parameters of `view`'s link; defaults are left out.

    The texts are left out when they are too long for a link (`with_text=None`), or when
    `with_text` is False; True keeps them whatever their length (a view file).
    """
    keep_text = view.text_in_link() if with_text is None else with_text
    params: dict[str, str] = {}
    for key in URL_FIELDS:
        value = getattr(view, key)
        if value == getattr(DEFAULT, key) or value is None:
            continue
        if key in TEXT_FIELDS and not keep_text:
            continue
        params[key] = _encode_field(value)
    return params


# ------------------------------------------------------------------ view files
def to_view_file(view: ViewState) -> str:
    """`view` as a small JSON document that `from_view_file` opens again (any text length)."""
    return json.dumps(
        {"kind": VIEW_FILE_KIND, "page": view.page, "params": encode(view, with_text=True)},
        ensure_ascii=False,
        indent=1,
    )


def from_view_file(data: str | bytes) -> tuple[ViewState, list[str]]:
    """The view a view file holds, and its problems; a file that is not one is a problem."""
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("kind") != VIEW_FILE_KIND:
            raise ValueError
        params = document.get("params")
        if not isinstance(params, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        return DEFAULT, ["This file is not an Attention Atlas view file."]
    strings = {str(key): str(value) for key, value in params.items()}
    return decode(strings, str(document.get("page", DEFAULT.page)))
