"""Concurrent first loads (issue 12, item 2): loading from many threads gives what one load gives.

Streamlit runs every visitor's script in its own thread, so several visitors opening the app at
once load models concurrently. Unserialised, transformers' process-wide loading switches made
masked-LM checkpoints come back headless and size estimates wrong, and the wrong model was then
cached for everyone.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from server.policy import load_model_for
from server.settings import DeployPolicy

# One family of each kind, with different tokenizers and layer/head layouts.
RACED_FAMILIES = ("bert", "roberta", "distilbert", "albert", "bert-encoder", "gpt2", "bart", "t5")
ROUNDS = 3
THREADS = 8
REPO = Path(__file__).resolve().parents[2]


def _signature(policy: DeployPolicy, path: Path) -> tuple:
    model = load_model_for(policy, str(path))
    return (model.kind, model.num_layers, model.num_heads, model.num_parameters)


def test_concurrent_loads_equal_the_serial_load(tiny_model_path):
    paths = {family: tiny_model_path(family) for family in RACED_FAMILIES}
    # A size cap makes load_model_for estimate parameters from the config first, on the meta
    # device: that path raced too ("roberta-base has 163M parameters").
    policy = DeployPolicy(max_parameters=10_000_000)
    serial = {family: _signature(policy, path) for family, path in paths.items()}
    assert len({signature[0] for signature in serial.values()}) == 4  # every kind is raced

    jobs = [family for _ in range(ROUNDS) for family in RACED_FAMILIES]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(lambda family: _signature(policy, paths[family]), jobs))

    wrong = [
        (family, got, serial[family])
        for family, got in zip(jobs, results, strict=True)
        if got != serial[family]
    ]
    assert not wrong, f"concurrent loads differ from the serial load: {wrong}"


def test_cold_start_concurrent_loads_import_transformers_safely(tiny_model_path):
    """A fresh process whose first loads are concurrent: transformers' lazy imports must not
    fail half-way ("cannot import name 'AutoConfig'"), and every load is right."""
    paths = [str(tiny_model_path(family)) for family in RACED_FAMILIES]
    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        sys.path.insert(0, {str(REPO)!r})
        from concurrent.futures import ThreadPoolExecutor
        from core.models import load_model
        paths = {paths!r}
        def load(path):
            model = load_model(path)
            return (model.kind.value, model.num_layers, model.num_heads, model.num_parameters)
        with ThreadPoolExecutor(max_workers=len(paths)) as pool:
            concurrent = list(pool.map(load, paths))
        serial = [load(path) for path in paths]
        assert concurrent == serial, (concurrent, serial)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
