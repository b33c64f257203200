"""The one lock around everything that makes transformers load or import (see LOADING_LOCK)."""

from __future__ import annotations

import threading

LOADING_LOCK = threading.RLock()
"""Held while transformers reads a config, builds a tokenizer or a model.

Loading is not thread-safe: transformers' lazy `__getattr__` imports can fail half-way on a cold
start ("cannot import name 'AutoConfig'"), and `from_pretrained` flips process-wide switches (the
default dtype, whether to initialise weights) that a second load in another thread sees, so
concurrent first loads came back with the wrong head or parameter count. Loading is rare and
cached by the UI, so one load at a time costs little. Reentrant: `load_model` reads the config
under the same lock. Code that builds models from configs itself (e.g. a size estimate on the
meta device) takes it too."""
