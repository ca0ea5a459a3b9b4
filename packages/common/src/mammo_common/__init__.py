"""mammo-common: the data contract and shared tools of the mammo pipeline.

The core (schema, stores, ingest, synthetic data, splits, metrics) imports without
TensorFlow or Keras; shared Keras code lives in :mod:`mammo_common.keras` (extra ``[keras]``).
"""

__version__ = "0.1.0"


def open_store(path, kind=None, *, deep=False):
    """Open and validate a store of any kind (see :func:`mammo_common.store.open_store`)."""
    from mammo_common.store import open_store as _open

    return _open(path, kind, deep=deep)
