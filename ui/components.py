"""The app's bidirectional components (``st.components.v2``, no build step), registered once.

Each component is a folder with ``<stem>.css`` and ``<stem>.js`` beside its Python module.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import streamlit as st


@cache
def registered(name: str, folder: Path, stem: str) -> Any:
    """Component `name` from `folder`/`stem`.css and .js, registered once per process
    (registering again under the same name logs a warning); call it to mount it."""
    return st.components.v2.component(
        name,
        css=(folder / f"{stem}.css").read_text(encoding="utf-8"),
        js=(folder / f"{stem}.js").read_text(encoding="utf-8"),
    )
