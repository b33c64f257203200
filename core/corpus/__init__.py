"""Corpus atlas: what each head does across many sentences, stored in DuckDB.

    from core import load_model, EMBEDDED_MODEL
    from core.corpus import bundled_corpus, run_corpus
    result = run_corpus(load_model(EMBEDDED_MODEL), bundled_corpus("austen"), max_tokens=64)
    result.head_table                      # one row per layer x head: means, intervals, labels
    result.examples(2, 5, "to_previous")    # sentences and token pairs behind a claim

Never imports streamlit. Ray is optional (`ray_address=`, requirements-cluster.txt).
"""

from core.corpus.global_view import (
    DEFAULT_MAX_POINTS,
    available_projections,
    embed_2d,
    global_view,
    normalise_queries_keys,
    query_key_vectors,
)
from core.corpus.inputs import (
    BUNDLED_CORPORA,
    FILE_TYPES,
    bundled_corpus,
    read_corpus_file,
    read_sentences,
)
from core.corpus.keys import corpus_hash, run_id
from core.corpus.labels import LABEL_RULES, LabelRule, head_labels, label_rules
from core.corpus.result import CorpusResult, open_corpus, open_run
from core.corpus.run import (
    DEFAULT_BATCH_SIZE,
    TOP_K,
    TYPICAL_SAMPLE,
    Progress,
    effective_max_tokens,
    process_batch,
    run_corpus,
)
from core.corpus.statistics import MODES, statistic_descriptions
from core.corpus.store import STORE_ENV, CorpusStore, default_store_path

__all__ = [
    "BUNDLED_CORPORA",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_POINTS",
    "FILE_TYPES",
    "LABEL_RULES",
    "MODES",
    "STORE_ENV",
    "TOP_K",
    "TYPICAL_SAMPLE",
    "CorpusResult",
    "CorpusStore",
    "LabelRule",
    "Progress",
    "available_projections",
    "bundled_corpus",
    "corpus_hash",
    "default_store_path",
    "effective_max_tokens",
    "embed_2d",
    "global_view",
    "head_labels",
    "label_rules",
    "normalise_queries_keys",
    "open_corpus",
    "open_run",
    "process_batch",
    "query_key_vectors",
    "read_corpus_file",
    "read_sentences",
    "run_corpus",
    "run_id",
    "statistic_descriptions",
]
