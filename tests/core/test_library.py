"""`core` is a library: importing and calling it leaves a notebook's process as it found it
(issue 20, item 2): torch's thread counts and the environment are unchanged, no signal
handler is installed."""

from __future__ import annotations

import os
import signal

import torch

import core

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _process_state() -> tuple:
    return (
        torch.get_num_threads(),
        torch.get_num_interop_threads(),
        dict(os.environ),
        tuple(signal.getsignal(number) for number in HANDLED_SIGNALS),
    )


def test_load_run_and_compute_leave_the_process_as_it_was(tiny_model_path):
    # A notebook on a machine with more than one core keeps PyTorch's own thread count: start
    # from a count the library could not have chosen itself (cores // slots is at most the
    # number of cores, and the old first slot set it so).
    # Built first: building it imports transformers' modelling code, whose import of
    # torch._dynamo sets TORCHINDUCTOR_CACHE_DIR (torch's import-time doing, not core's).
    path = str(tiny_model_path("bert"))
    before_threads = torch.get_num_threads()
    torch.set_num_threads(max(2, before_threads) + 1)
    try:
        before = _process_state()
        model = core.load_model(path)
        result = core.run_attention(model, "The cat sat on the mat.")
        for name in core.list_methods(model):
            core.compute_method(model, "The cat sat on the mat.", name)
        assert result.num_layers == model.num_layers
        after = _process_state()
        changed = {
            key
            for key in before[2].keys() | after[2].keys()
            if before[2].get(key) != after[2].get(key)
        }
        assert not changed, f"environment variables changed: {sorted(changed)}"
        assert after == before
    finally:
        torch.set_num_threads(before_threads)
