"""Zarr v3 stores of the data contract: open and validate any kind, write each kind atomically."""

from mammo_common.store.atomic import atomic_path, write_json_atomic, write_text_atomic
from mammo_common.store.reader import (
    BreastStore,
    CaseData,
    DiagnosisStore,
    MammogramsStore,
    MassesStore,
    StackedStore,
    Store,
    meta_digest,
    open_store,
    read_meta,
)
from mammo_common.store.writers import (
    MammogramsWriter,
    StackedStoreWriter,
    write_diagnosis_store,
)

__all__ = [
    "BreastStore",
    "CaseData",
    "DiagnosisStore",
    "MammogramsStore",
    "MammogramsWriter",
    "MassesStore",
    "StackedStore",
    "StackedStoreWriter",
    "Store",
    "atomic_path",
    "meta_digest",
    "open_store",
    "read_meta",
    "write_diagnosis_store",
    "write_json_atomic",
    "write_text_atomic",
]
