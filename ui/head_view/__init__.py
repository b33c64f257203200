"""BertViz-style head view as a Streamlit component: ``from ui.head_view import head_view``."""

from ui.head_view.component import head_view
from ui.head_view.payload import (
    DEFAULT_THRESHOLD,
    DEFAULT_TOP_K,
    build_payload,
    payload_json,
    strongest_lines,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_TOP_K",
    "build_payload",
    "head_view",
    "payload_json",
    "strongest_lines",
]
