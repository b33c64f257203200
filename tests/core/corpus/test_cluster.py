"""Ray: the same run on a local 2-CPU Ray instance writes the same tables."""

from __future__ import annotations

import importlib.util
import os

import pandas as pd
import pytest

from core.corpus import CorpusStore, run_corpus
from core.corpus.cluster import ray_runtime_env
from tests.core.corpus.conftest import SENTENCES, assert_same_examples

# Ray is an optional extra: a plain install skips this test, but CI installs
# requirements-cluster.txt, so there a missing Ray is a failure, not a silent skip.
if os.environ.get("CI") and importlib.util.find_spec("ray") is None:
    pytest.fail("Ray is not installed: CI must install requirements-cluster.txt.")
ray = pytest.importorskip("ray")


@pytest.fixture
def local_ray():
    ray.init(
        num_cpus=2, runtime_env=ray_runtime_env(), include_dashboard=False, log_to_driver=False
    )
    yield
    ray.shutdown()


def test_ray_run_equals_single_process_run(tiny_model_path, tmp_path, local_ray):
    from core import load_model

    model = load_model(str(tiny_model_path("bert")))
    single = run_corpus(model, SENTENCES, store=CorpusStore(tmp_path / "one.duckdb"), batch_size=2)
    progress = []
    clustered = run_corpus(
        model,
        SENTENCES,
        store=CorpusStore(tmp_path / "ray.duckdb"),
        batch_size=2,
        ray_address="local",
        workers=2,
        progress=lambda *a: progress.append(a[0]),
    )
    assert clustered.run_id == single.run_id and clustered.finished
    assert progress == [2, 4, 6, 8, 9]
    # Not bit for bit: each actor runs torch on one thread, the driver on several, and float32
    # sums in another order move attention by ~1e-9.
    pd.testing.assert_frame_equal(clustered.head_table, single.head_table, rtol=0, atol=1e-6)
    assert_same_examples(clustered, single, atol=1e-6)
