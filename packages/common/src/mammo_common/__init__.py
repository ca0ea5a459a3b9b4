"""mammo-common: the data contract and shared tools of the mammo pipeline.

The core (schema, stores, ingest, synthetic data, splits, metrics) imports without
TensorFlow or Keras; shared Keras code lives in :mod:`mammo_common.keras` (extra ``[keras]``).
"""

from mammo_common.runtime import prefer_pooled_cpu_allocator as _prefer_pooled_cpu_allocator

__version__ = "0.1.0"

# before any TensorFlow tensor exists: see mammo_common.runtime
_prefer_pooled_cpu_allocator()


def open_store(path, kind=None, *, deep=False):
    """Open and validate a store of any kind (see :func:`mammo_common.store.open_store`)."""
    from mammo_common.store import open_store as _open

    return _open(path, kind, deep=deep)
