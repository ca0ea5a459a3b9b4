"""What is in a store, for ``mammo info``: kind, version, cases, arrays, mask sizes, lineage."""

from __future__ import annotations

from typing import Any

import numpy as np

from mammo_common.store.reader import (
    DiagnosisStore,
    MammogramsStore,
    StackedStore,
    Store,
)

CASE_FIELDS = ("patient_id", "laterality", "view", "abnormality", "pathology", "birads", "density")


def store_summary(store: Store, *, max_cases: int | None = None) -> dict[str, Any]:
    """Describe a store as JSON-ready data.

    Args:
        store: An opened store.
        max_cases: Describe at most this many cases individually (all when None).

    Returns:
        A dict with ``path``, ``kind``, ``schema_version``, ``n_cases``, ``producer``, ``parents``,
        ``arrays`` (name -> shape/dtype), ``cases`` (attributes and mask pixel counts) and
        ``counts`` (cases per pathology, view).
    """
    meta = store.meta
    out: dict[str, Any] = {
        "path": str(store.path),
        "kind": store.kind,
        "schema_version": meta.schema_version,
        "n_cases": len(store),
        "producer": meta.producer.model_dump(mode="json"),
        "parents": [p.model_dump(mode="json") for p in meta.parents],
        "arrays": {},
        "cases": [],
    }
    ids = store.case_ids if max_cases is None else store.case_ids[:max_cases]
    if isinstance(store, MammogramsStore):
        records = [store.record(cid) for cid in store.case_ids]
        out["source_format"] = store.meta.source_format
        out["skipped"] = [s.model_dump() for s in store.meta.skipped]
        for cid in ids:
            group = store.group[f"cases/{cid}"]
            record = store.record(cid)
            case = {"case_id": cid, **{f: getattr(record, f) for f in CASE_FIELDS}}
            case["shape"] = list(group["image"].shape)
            for name in ("breast_mask", "mass_mask"):
                if name in group:
                    case[f"{name}_pixels"] = int(np.count_nonzero(group[name][...]))
            case["n_masses"] = len(record.masses)
            out["cases"].append(case)
        if ids:
            first = store.group[f"cases/{ids[0]}"]
            out["arrays"] = {
                f"cases/*/{n}": {"dtype": str(first[n].dtype)} for n in first.array_keys()
            }
    elif isinstance(store, StackedStore):
        records = store.cases
        out["image_size"] = list(store.image_size)
        for name in store.group.array_keys():
            arr = store.group[name]
            out["arrays"][name] = {"shape": list(arr.shape), "dtype": str(arr.dtype)}
        mask_names = [n for n in ("breast_masks", "mass_masks", "mass_pred") if store.has(n)]
        for i, cid in enumerate(ids):
            record = records[i]
            case = {"case_id": cid, **{f: getattr(record, f) for f in CASE_FIELDS}}
            case["crop_box"] = list(store.transforms[i].crop_box)
            for name in mask_names:
                case[f"{name}_pixels"] = int(np.count_nonzero(store.array(name)[i]))
            out["cases"].append(case)
    elif isinstance(store, DiagnosisStore):
        records = store.meta.cases
        out["threshold"] = store.meta.threshold
        out["arrays"]["probabilities"] = {"shape": [len(store)], "dtype": "float32"}
        for diag in store.meta.diagnoses[: len(ids)]:
            out["cases"].append(diag.model_dump(mode="json"))
    else:  # pragma: no cover
        records = []
    out["counts"] = {
        "pathology": _count(r.pathology for r in records),
        "view": _count(r.view for r in records),
        "abnormality": _count(r.abnormality for r in records),
        "patients": len({r.patient_id for r in records}),
    }
    return out


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return dict(sorted(counts.items()))
