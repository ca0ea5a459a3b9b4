"""The data contract: typed, versioned metadata of every store, record and file the stages share."""

from mammo_common.schema.cases import (
    CASE_ID_PATTERN,
    CaseRecord,
    DicomRef,
    MassRecord,
    safe_case_id,
)
from mammo_common.schema.lineage import ParentRef, Producer, params_digest
from mammo_common.schema.model_card import DataLineage, ModelCard, model_id
from mammo_common.schema.splits import Fold, Splits, SplitsFileError
from mammo_common.schema.stores import (
    CASE_KEY,
    META_KEY,
    META_MODELS,
    STORE_KINDS,
    BreastMeta,
    CaseDiagnosis,
    CaseTransform,
    DiagnosisMeta,
    MammogramsMeta,
    MassDiagnosis,
    MassesMeta,
    SkippedFile,
    StoreKind,
    StoreMeta,
)
from mammo_common.schema.version import SCHEMA_VERSION, is_supported

__all__ = [
    "CASE_ID_PATTERN",
    "CASE_KEY",
    "META_KEY",
    "META_MODELS",
    "SCHEMA_VERSION",
    "STORE_KINDS",
    "BreastMeta",
    "CaseDiagnosis",
    "CaseRecord",
    "CaseTransform",
    "DataLineage",
    "DiagnosisMeta",
    "DicomRef",
    "Fold",
    "MammogramsMeta",
    "MassDiagnosis",
    "MassRecord",
    "MassesMeta",
    "ModelCard",
    "ParentRef",
    "Producer",
    "SkippedFile",
    "Splits",
    "SplitsFileError",
    "StoreKind",
    "StoreMeta",
    "is_supported",
    "model_id",
    "params_digest",
    "safe_case_id",
]
