"""Running a corpus's batches on Ray actors, each holding its own copy of the model.

Ray is an optional extra (`requirements-cluster.txt`). The driver keeps the store and the
accumulation; workers only run `process_batch` and send back per-sentence numbers
(`[B, L, H, S]`, a few kB per sentence), so results are combined in the same order and the
tables are the ones a single-process run writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from core.errors import ClusterError

REPOSITORY = Path(__file__).resolve().parents[2]
IN_FLIGHT_PER_WORKER = 2
"""Batches queued per actor: enough to keep it busy, few enough to bound driver memory."""


def ray_runtime_env(remote: bool = False) -> dict:
    """The runtime environment workers need to import `core` (pass it to `ray.init`).

    On this machine the repository is put on the workers' PYTHONPATH; for a remote cluster
    (`remote=True`) Ray uploads it as the job's working directory instead (code and the bundled
    corpus, not the git history, tests or benchmarks). Models are loaded by name on each
    worker: a Hub id must be reachable from the cluster, a local path must exist on its nodes.
    """
    environment = {"TOKENIZERS_PARALLELISM": "false"}
    if remote:
        return {
            "working_dir": str(REPOSITORY),
            "excludes": [".git", "tests", "bench", "docs", "*.duckdb"],
            "env_vars": environment,
        }
    path = os.pathsep.join(p for p in (str(REPOSITORY), os.environ.get("PYTHONPATH")) if p)
    return {"env_vars": {"PYTHONPATH": path, **environment}}


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(
            "Ray is not installed: pip install -r requirements-cluster.txt, or run without a "
            "cluster address."
        ) from exc
    return ray


def connect(address: str, workers: int):
    """Connect to `address` ("local" starts a local instance with `workers` CPUs)."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    try:
        if address == "local":
            ray.init(
                num_cpus=workers,
                runtime_env=ray_runtime_env(),
                include_dashboard=False,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, runtime_env=ray_runtime_env(remote=True), log_to_driver=False)
    except Exception as exc:
        raise ClusterError(
            f"Cannot connect to the Ray cluster at '{address}' ({type(exc).__name__}): check the "
            "address, or use 'local'."
        ) from exc
    return ray


def ray_batches(
    model_name: str,
    sentences: Sequence[str],
    batches: Iterable[np.ndarray],
    max_tokens: int,
    mode: str,
    address: str,
    workers: int,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`(indices, values, pairs)` per batch, in the order given, computed on Ray actors."""
    ray = connect(address, workers)

    # Each actor reserves one CPU, so its torch runs one thread: said to Ray as the actor's own
    # environment, so that nothing here changes a process's threads.
    @ray.remote(num_cpus=1, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    class Worker:
        def __init__(self, name: str) -> None:
            from core.models import load_model

            self.model = load_model(name)

        def run(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
            from core.corpus.run import process_batch

            return process_batch(self.model, texts, max_tokens, mode)

    actors = [Worker.remote(model_name) for _ in range(max(1, workers))]
    pending: list[tuple[np.ndarray, object]] = []
    try:
        for number, indices in enumerate(batches):
            texts = [sentences[i] for i in indices]
            pending.append((indices, actors[number % len(actors)].run.remote(texts)))
            if len(pending) >= IN_FLIGHT_PER_WORKER * len(actors):
                indices, reference = pending.pop(0)
                yield (indices, *ray.get(reference))
        while pending:
            indices, reference = pending.pop(0)
            yield (indices, *ray.get(reference))
    finally:
        for _, reference in pending:
            ray.cancel(reference)
        for actor in actors:
            ray.kill(actor)
