"""How a caller steers long work in `core`: progress, cancel and a limiter, one convention.

`core` is a library: it takes no server's admission slot, reads no environment and leaves the
process's threads alone. A caller that shares the machine (the app's server) passes these in;
a notebook passes nothing and gets plain, unlimited calls.

- ``progress(done, total)``: called as work advances, in units the function names (tokens,
  rows, variants); returning ``False`` stops the work with `ComputationCancelled`.
- ``cancel()``: asked at the same points; returning ``True`` stops the work the same way. For
  callers whose "stop" is a flag (a closed tab, a deadline) rather than a progress bar.
- ``limiter(what)``: a context-manager factory held around each forward pass (or each batch
  of them), ``what`` naming the work ("leave-one-out"). The app passes its admission slot
  (reentrant per thread, so a request already holding one is not counted twice); the default
  (None, read as `no_limit`) holds nothing.

Functions that run forward passes take them as keyword arguments with these names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

from core.errors import ComputationCancelled

Progress = Callable[[int, int], "bool | None"]
Cancel = Callable[[], bool]
Limiter = Callable[[str], AbstractContextManager[object]]


def no_limit(what: str) -> AbstractContextManager[None]:
    """The default limiter: holds nothing (a notebook has no line to wait in)."""
    return contextlib.nullcontext()


def checkpoint(
    done: int,
    total: int,
    what: str,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> None:
    """Report `done` of `total` to `progress`; raise `ComputationCancelled` ("`what` was
    stopped …") when `cancel()` is true or `progress` returns False."""
    if (cancel is not None and cancel()) or (
        progress is not None and progress(done, total) is False
    ):
        raise ComputationCancelled(f"{what} was stopped before it finished.")
