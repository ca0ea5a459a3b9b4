"""The cascade's findings as a table: ``results.csv`` and ``results.json`` from a diagnosis store.

``mammo results data/diagnosis.zarr --out-dir results`` reads the ``diagnosis`` store written by
``massclass predict`` and, through its lineage, the ``masses`` store it was predicted from (the
masks, the mass probability maps and each case's :class:`~mammo_common.schema.CaseTransform` from
the native image to the breast crop). It writes one row per mass and one row per case:

* a **mass row** (``row_type`` ``mass``) per classified mass: where it is on the *native* image
  (bounding box, centroid, area in pixels and, when the case records its pixel spacing, in
  millimetres), how sure segmentation was (mean and max of ``mass_probs`` over the mass's own
  pixels) and the malignancy probability and label;
* a **case row** (``row_type`` ``case``) per image: its most malignant mass (same columns,
  ``label`` the case label), or ``label`` ``no_mass_found`` with the mass columns empty.

Coordinates follow DICOM's spatial-coordinate convention: the image's top-left *corner* is
``(0, 0)`` and native pixel ``(r, c)`` spans ``[r, r + 1) x [c, c + 1)``. A box's edges are thus
the end-exclusive pixel indices ``(y0, x0, y1, x1)``, a centroid is the mean pixel index plus 0.5,
and millimetres are pixels times the pixel spacing (rows: ``pixel_spacing[0]``, columns:
``pixel_spacing[1]``). The native mass is the store's mass mapped back nearest-neighbour, exactly
as :func:`mammo_common.transforms.invert_transform` maps masks.

Example:
    >>> from mammo_common.results import ResultsConfig, write_results
    >>> summary = write_results(ResultsConfig(  # doctest: +SKIP
    ...     diagnosis="data/diagnosis.zarr", out_dir="results"))
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, model_validator

from mammo_common import __version__
from mammo_common.errors import ConfigError, MammoError, StoreError
from mammo_common.postprocess import Component, components
from mammo_common.schema import CaseDiagnosis, CaseRecord, CaseTransform, MassDiagnosis, ParentRef
from mammo_common.store import DiagnosisStore, MassesStore, open_store
from mammo_common.store.atomic import check_output_path, write_text_atomic
from mammo_common.store.reader import meta_digest, read_meta
from mammo_common.transforms import box_to_native, invert_transform_window

__all__ = [
    "COLUMNS",
    "COLUMN_HELP",
    "FORMAT",
    "FORMAT_VERSION",
    "FoundMass",
    "MassGeometry",
    "ResultsConfig",
    "ResultsSummary",
    "ResultsTable",
    "case_rows",
    "mass_geometry",
    "results_table",
    "write_results",
    "write_table",
]

#: ``format`` of results.json, and its version (raised when columns change meaning).
FORMAT = "mammo-results"
FORMAT_VERSION = 1

#: The table's columns, in order (results.csv header; keys of every row of results.json).
COLUMNS: tuple[str, ...] = (
    "row_type",
    "case_id",
    "patient_id",
    "laterality",
    "view",
    "source_path",
    "sop_instance_uid",
    "study_instance_uid",
    "series_instance_uid",
    "mass_index",
    "n_masses",
    "label",
    "malignancy_probability",
    "mass_probability_mean",
    "mass_probability_max",
    "bbox_y0",
    "bbox_x0",
    "bbox_y1",
    "bbox_x1",
    "centroid_y",
    "centroid_x",
    "area_px",
    "pixel_spacing_row_mm",
    "pixel_spacing_col_mm",
    "bbox_y0_mm",
    "bbox_x0_mm",
    "bbox_y1_mm",
    "bbox_x1_mm",
    "centroid_y_mm",
    "centroid_x_mm",
    "area_mm2",
    "truth",
)

#: What each column holds (results.json ``metadata.columns``; docs/results.md).
COLUMN_HELP: dict[str, str] = {
    "row_type": "'mass' (one classified mass) or 'case' (the image: its most malignant mass)",
    "case_id": "case id in the stores",
    "patient_id": "patient id",
    "laterality": "L, R or unknown",
    "view": "CC, MLO or other",
    "source_path": "image file, relative to the ingested folder",
    "sop_instance_uid": "SOPInstanceUID of the source DICOM image (empty when not DICOM)",
    "study_instance_uid": "StudyInstanceUID of the source DICOM image",
    "series_instance_uid": "SeriesInstanceUID of the source DICOM image",
    "mass_index": "1-based mass number within the case (raster order on the breast crop); "
    "case rows: the most malignant mass",
    "n_masses": "case rows: masses found in the image",
    "label": "mass rows: benign or malignant at the threshold; case rows: benign, malignant "
    "or no_mass_found",
    "malignancy_probability": "classifier's malignancy probability (case rows: the maximum over "
    "the case's masses)",
    "mass_probability_mean": "mean of the segmentation's mass probability over the mass's pixels",
    "mass_probability_max": "maximum of the segmentation's mass probability over the mass",
    "bbox_y0": "top edge of the bounding box, native pixels",
    "bbox_x0": "left edge, native pixels",
    "bbox_y1": "bottom edge (end-exclusive), native pixels",
    "bbox_x1": "right edge (end-exclusive), native pixels",
    "centroid_y": "centre of mass, native pixels from the image's top edge (pixel centre = "
    "index + 0.5)",
    "centroid_x": "centre of mass, native pixels from the image's left edge",
    "area_px": "native pixels of the mass",
    "pixel_spacing_row_mm": "row spacing of the native image in mm (empty when unknown)",
    "pixel_spacing_col_mm": "column spacing in mm (empty when unknown)",
    "bbox_y0_mm": "bbox_y0 in mm from the image's top edge",
    "bbox_x0_mm": "bbox_x0 in mm from the image's left edge",
    "bbox_y1_mm": "bbox_y1 in mm",
    "bbox_x1_mm": "bbox_x1 in mm",
    "centroid_y_mm": "centroid_y in mm",
    "centroid_x_mm": "centroid_x in mm",
    "area_mm2": "area in mm^2",
    "truth": "case rows: ground-truth pathology (benign, malignant) or unknown",
}

_PX_DECIMALS = 3
_MM_DECIMALS = 4
_PROB_DECIMALS = 6


class ResultsConfig(BaseModel):
    """Settings of :func:`write_results` (``mammo results``).

    Attributes:
        diagnosis: The ``diagnosis`` store (``massclass predict``).
        out_dir: Folder for ``results.csv`` and ``results.json`` (when ``csv``/``json_out`` are
            not given).
        csv: The CSV to write (default ``<out_dir>/results.csv``).
        json_out: The JSON to write (default ``<out_dir>/results.json``).
        masses: The ``masses`` store the diagnosis was predicted from (default: found through
            the diagnosis store's lineage).
        overwrite: Replace existing outputs.
    """

    model_config = ConfigDict(extra="forbid")

    diagnosis: Path
    out_dir: Path | None = None
    csv: Path | None = None
    json_out: Path | None = None
    masses: Path | None = None
    overwrite: bool = False

    @model_validator(mode="after")
    def _outputs(self) -> ResultsConfig:
        if self.out_dir is None and (self.csv is None or self.json_out is None):
            raise ValueError(
                "give --out-dir, or both --csv and --json (where to write the results)"
            )
        return self

    @property
    def csv_path(self) -> Path:
        """Where the CSV goes."""
        return self.csv if self.csv is not None else self.out_dir / "results.csv"  # type: ignore[operator]

    @property
    def json_path(self) -> Path:
        """Where the JSON goes."""
        if self.json_out is not None:
            return self.json_out
        return self.out_dir / "results.json"  # type: ignore[operator]


class ResultsSummary(BaseModel):
    """What :func:`write_results` wrote."""

    model_config = ConfigDict(extra="forbid")

    csv: Path
    json_out: Path
    diagnosis: Path
    masses: Path
    n_cases: int
    n_masses: int
    n_no_mass_found: int
    n_malignant_cases: int


class MassGeometry(BaseModel):
    """Where one mass lies on the native image (see the module docstring for the frame).

    Attributes:
        bbox: ``(y0, x0, y1, x1)`` native pixels, end-exclusive.
        centroid: ``(y, x)`` centre of mass, native pixels (pixel centres at index + 0.5).
        area_px: Native pixels of the mass.
        pixel_spacing: ``(row, col)`` mm per pixel, or None.
        bbox_mm: The box in mm, or None without a pixel spacing.
        centroid_mm: The centroid in mm, or None.
        area_mm2: The area in mm^2, or None.
        mass_probability_mean: Mean of the mass probability map over the mass (None without a
            map).
        mass_probability_max: Its maximum over the mass.
    """

    model_config = ConfigDict(extra="forbid")

    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    area_px: int
    pixel_spacing: tuple[float, float] | None = None
    bbox_mm: tuple[float, float, float, float] | None = None
    centroid_mm: tuple[float, float] | None = None
    area_mm2: float | None = None
    mass_probability_mean: float | None = None
    mass_probability_max: float | None = None


class ResultsTable(BaseModel):
    """The table in memory: ``rows`` (dicts over :data:`COLUMNS`) and ``metadata``."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str]
    rows: list[dict[str, Any]]
    metadata: dict[str, Any]


def _round(value: float, decimals: int) -> float:
    return float(round(float(value), decimals))


def mass_geometry(
    store_mask: NDArray,
    transform: CaseTransform | None,
    *,
    pixel_spacing: Sequence[float] | None = None,
    mass_probs: NDArray | None = None,
) -> MassGeometry:
    """Measure one mass, given on the store (breast crop) grid, on the native image.

    Args:
        store_mask: The mass's own mask on the store grid (non-zero = mass; one component).
        transform: The case's native -> store transform (None: the grids coincide).
        pixel_spacing: ``(row, col)`` mm per native pixel, when known.
        mass_probs: The case's mass probability map on the store grid, when known.

    Returns:
        The mass's native box, centroid, area (pixels and mm) and mass probability.

    Raises:
        ValueError: An empty mask, or a mask and transform of different shapes.
    """
    mask = np.asarray(store_mask) > 0
    if not mask.any():
        raise ValueError("the mass mask is empty")
    rows, cols = np.nonzero(mask)
    store_box = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
    prob_mean = prob_max = None
    if mass_probs is not None:
        values = np.asarray(mass_probs, dtype=np.float64)[mask]
        prob_mean = _round(values.mean(), _PROB_DECIMALS)
        prob_max = _round(values.max(), _PROB_DECIMALS)
    if transform is None:
        window = store_box
        native = mask[store_box[0] : store_box[2], store_box[1] : store_box[3]]
    else:
        window = box_to_native(store_box, transform)
        native = invert_transform_window(mask, transform, window)
    if native.any():
        ny, nx = np.nonzero(native)
        bbox = (
            window[0] + int(ny.min()),
            window[1] + int(nx.min()),
            window[0] + int(ny.max()) + 1,
            window[1] + int(nx.max()) + 1,
        )
        centroid = (window[0] + float(ny.mean()) + 0.5, window[1] + float(nx.mean()) + 0.5)
        area = int(ny.size)
    else:  # a mass smaller than a native pixel (the crop was enlarged): map it continuously
        assert transform is not None
        sy, sx = 1.0 / transform.scale_y, 1.0 / transform.scale_x
        cy0, cx0 = transform.crop_box[:2]
        bbox = window
        centroid = (cy0 + (float(rows.mean()) + 0.5) * sy, cx0 + (float(cols.mean()) + 0.5) * sx)
        area = max(1, round(rows.size * sy * sx))
    centroid = (_round(centroid[0], _PX_DECIMALS), _round(centroid[1], _PX_DECIMALS))
    geometry = MassGeometry(
        bbox=bbox,
        centroid=centroid,
        area_px=area,
        mass_probability_mean=prob_mean,
        mass_probability_max=prob_max,
    )
    if pixel_spacing is None:
        return geometry
    sr, sc = (float(v) for v in pixel_spacing)
    if not (math.isfinite(sr) and math.isfinite(sc) and sr > 0 and sc > 0):
        return geometry
    y0, x0, y1, x1 = bbox
    return geometry.model_copy(
        update={
            "pixel_spacing": (sr, sc),
            "bbox_mm": tuple(_round(v, _MM_DECIMALS) for v in (y0 * sr, x0 * sc, y1 * sr, x1 * sc)),
            "centroid_mm": (
                _round(centroid[0] * sr, _MM_DECIMALS),
                _round(centroid[1] * sc, _MM_DECIMALS),
            ),
            "area_mm2": _round(area * sr * sc, _MM_DECIMALS),
        }
    )


# --------------------------------------------------------------------------- lineage


def _candidates(ref: ParentRef, child: Path) -> list[Path]:
    """Where a parent recorded as ``ref.path`` may be now (as recorded, or beside the child)."""
    recorded = Path(ref.path)
    found = [recorded]
    if not recorded.is_absolute():
        found.append(child.parent / recorded)
    found.append(child.parent / recorded.name)
    return list(dict.fromkeys(found))


def _find_parent_meta(ref: ParentRef, child: Path) -> tuple[Path, dict[str, Any]] | None:
    """The parent's path and raw metadata when it still exists unchanged."""
    for path in _candidates(ref, child):
        if not path.exists():
            continue
        try:
            raw = read_meta(path)
        except StoreError:
            continue
        if meta_digest(raw) == ref.digest:
            return path, raw
    return None


def _open_masses(diagnosis: DiagnosisStore, masses: Path | None) -> MassesStore:
    refs = [p for p in diagnosis.meta.parents if p.kind == "masses"]
    if masses is not None:
        store = open_store(masses, "masses")
        if refs and all(store.digest != ref.digest for ref in refs):
            raise StoreError(
                "is not the masses store this diagnosis was predicted from (its metadata "
                "differs from the one recorded in the diagnosis store's lineage)",
                path=masses,
                field="--masses",
                fix=f"pass the masses store recorded as parent ({refs[0].path}), or re-run "
                "massclass predict on this one",
            )
        return store  # type: ignore[return-value]
    if not refs:
        raise StoreError(
            "records no parent masses store",
            path=diagnosis.path,
            field="parents",
            fix="pass the masses store the diagnosis was predicted from with --masses",
        )
    for ref in refs:
        found = _find_parent_meta(ref, diagnosis.path)
        if found is not None:
            return open_store(found[0], "masses")  # type: ignore[return-value]
    tried = ", ".join(str(p) for p in _candidates(refs[0], diagnosis.path))
    raise StoreError(
        f"its parent masses store was not found unchanged (looked at {tried})",
        path=diagnosis.path,
        field="parents",
        fix="pass the masses store the diagnosis was predicted from with --masses (it holds "
        "the masks and the crop transforms back to the native images)",
    )


def _lineage(masses: MassesStore) -> dict[str, Any]:
    """Breast and mammograms stores above the masses store, as far as they are still there."""
    out: dict[str, Any] = {"breast_store": None, "mammograms_store": None}
    for ref in masses.meta.parents:
        if ref.kind != "breast":
            continue
        entry: dict[str, Any] = {"path": ref.path, "digest": ref.digest, "found": False}
        found = _find_parent_meta(ref, masses.path)
        if found is not None:
            raw = found[1]
            entry.update(found=True, producer=_producer(raw.get("producer", {})))
            for grand in raw.get("parents", []):
                if grand.get("kind") == "mammograms":
                    out["mammograms_store"] = {
                        "path": grand.get("path"), "digest": grand.get("digest")
                    }
        out["breast_store"] = entry
    return out


def _producer(raw: Any) -> dict[str, Any]:
    if hasattr(raw, "model_dump"):
        raw = raw.model_dump(mode="json")
    keys = ("package", "version", "command", "model_ids")
    return {k: raw.get(k) for k in keys} if isinstance(raw, dict) else {}


# --------------------------------------------------------------------------- rows


def _dicom_uid(record: CaseRecord, name: str) -> str | None:
    dicom = getattr(record, "dicom", None)
    return getattr(dicom, name, None) if dicom is not None else None


def _case_columns(record: CaseRecord) -> dict[str, Any]:
    spacing = record.pixel_spacing
    return {
        "case_id": record.case_id,
        "patient_id": record.patient_id,
        "laterality": record.laterality,
        "view": record.view,
        "source_path": record.source_path or None,
        "sop_instance_uid": _dicom_uid(record, "sop_instance_uid"),
        "study_instance_uid": _dicom_uid(record, "study_instance_uid"),
        "series_instance_uid": _dicom_uid(record, "series_instance_uid"),
        "pixel_spacing_row_mm": None if spacing is None else float(spacing[0]),
        "pixel_spacing_col_mm": None if spacing is None else float(spacing[1]),
    }


def _geometry_columns(geometry: MassGeometry) -> dict[str, Any]:
    y0, x0, y1, x1 = geometry.bbox
    values: dict[str, Any] = {
        "mass_probability_mean": geometry.mass_probability_mean,
        "mass_probability_max": geometry.mass_probability_max,
        "bbox_y0": y0,
        "bbox_x0": x0,
        "bbox_y1": y1,
        "bbox_x1": x1,
        "centroid_y": geometry.centroid[0],
        "centroid_x": geometry.centroid[1],
        "area_px": geometry.area_px,
        "area_mm2": geometry.area_mm2,
    }
    if geometry.bbox_mm is not None:
        for key, v in zip(("bbox_y0_mm", "bbox_x0_mm", "bbox_y1_mm", "bbox_x1_mm"),
                          geometry.bbox_mm, strict=True):
            values[key] = v
    if geometry.centroid_mm is not None:
        values["centroid_y_mm"], values["centroid_x_mm"] = geometry.centroid_mm
    return values


def _row(**values: Any) -> dict[str, Any]:
    unknown = set(values) - set(COLUMNS)
    assert not unknown, f"not a results column: {sorted(unknown)}"
    return {column: values.get(column) for column in COLUMNS}


def _find_component(
    comps: list[Component], mass: MassDiagnosis, case_id: str, store: MassesStore
) -> Component:
    for comp in comps:
        if tuple(comp.bbox) == tuple(mass.bbox) and comp.area == mass.area:
            return comp
    raise StoreError(
        f"mass {mass.mass_index} of case {case_id} (box {tuple(mass.bbox)}, {mass.area} "
        "pixels) is not an object of its mass_pred",
        path=store.path,
        field="mass_pred",
        fix="pass the masses store the diagnosis was predicted from with --masses",
    )


@dataclass(frozen=True)
class FoundMass:
    """One mass of a case, as :func:`case_rows` takes it.

    Attributes:
        mass_index: 1-based mass number within the case.
        mask: The mass's own mask on the store (work-image) grid; non-zero = mass.
        label: ``benign`` / ``malignant`` (None: not classified).
        probability: Malignancy probability (None: not classified).
    """

    mass_index: int
    mask: NDArray = field(repr=False)
    label: str | None = None
    probability: float | None = None


def case_rows(
    record: CaseRecord,
    masses: Sequence[FoundMass],
    *,
    transform: CaseTransform | None,
    mass_probs: NDArray | None = None,
    label: str | None = None,
    probability: float | None = None,
    truth: str | None = "unknown",
) -> list[dict[str, Any]]:
    """The table's rows of one case: its case row, then one row per mass by ``mass_index``.

    Used by :func:`results_table` (stores) and by ``mammo run`` (one image in memory), so both
    write the same columns with the same geometry.

    Args:
        record: The case (ids, source, laterality, view, pixel spacing, DICOM identifiers).
        masses: Its masses, on the store grid.
        transform: Native -> store transform (None: the grids coincide).
        mass_probs: The segmentation's mass probability map on the store grid, if known.
        label: The case label (default: ``no_mass_found`` without masses, else the most
            malignant mass's label).
        probability: The case's malignancy probability (default: the most malignant mass's).
        truth: The case's ground-truth pathology, for the ``truth`` column.

    Returns:
        Row dicts over :data:`COLUMNS` (None for an empty cell).
    """
    case = _case_columns(record)
    mass_rows: list[dict[str, Any]] = []
    for mass in sorted(masses, key=lambda m: m.mass_index):
        geometry = mass_geometry(
            mass.mask, transform, pixel_spacing=record.pixel_spacing, mass_probs=mass_probs
        )
        mass_rows.append(
            _row(
                row_type="mass",
                **case,
                mass_index=mass.mass_index,
                label=mass.label,
                malignancy_probability=(
                    None if mass.probability is None else _round(mass.probability,
                                                                 _PROB_DECIMALS)
                ),
                **_geometry_columns(geometry),
            )
        )
    if not mass_rows:
        return [_row(row_type="case", **case, n_masses=0, label=label or "no_mass_found",
                     truth=truth)]

    def severity(row: dict[str, Any]) -> tuple[float, int]:
        p = row["malignancy_probability"]
        return (-math.inf if p is None else p, -row["mass_index"])

    worst = max(mass_rows, key=severity)
    case_row = {
        **worst,
        "row_type": "case",
        "n_masses": len(mass_rows),
        "label": worst["label"] if label is None else label,
        "malignancy_probability": (
            worst["malignancy_probability"]
            if probability is None
            else _round(probability, _PROB_DECIMALS)
        ),
        "truth": truth,
    }
    return [case_row, *mass_rows]


def _case_rows(
    record: CaseRecord,
    diag: CaseDiagnosis,
    masses: MassesStore,
    index: int,
    transform: CaseTransform,
) -> list[dict[str, Any]]:
    found: list[FoundMass] = []
    probs = None
    if diag.masses:
        pred = np.asarray(masses.array("mass_pred")[index]) > 0
        probs = np.asarray(masses.array("mass_probs")[index])
        comps = components(pred)
        for mass in diag.masses:
            comp = _find_component(comps, mass, record.case_id, masses)
            own = np.zeros(pred.shape, dtype=bool)
            own[comp.slices] = comp.mask
            found.append(FoundMass(mass.mass_index, own, mass.label, mass.probability))
    return case_rows(
        record, found, transform=transform, mass_probs=probs,
        label=diag.label if found else None, probability=diag.probability, truth=diag.truth,
    )


def results_table(diagnosis: str | Path, masses: str | Path | None = None) -> ResultsTable:
    """Build the results table of a ``diagnosis`` store (nothing is written).

    Args:
        diagnosis: The ``diagnosis`` store.
        masses: Its ``masses`` store (default: the parent recorded in the diagnosis store,
            as recorded or beside it, if unchanged).

    Returns:
        The rows (case row, then its mass rows, per case in store order) and the metadata.

    Raises:
        StoreError: Wrong-kind or invalid stores, no masses store found, a masses store that
            is not the diagnosis store's parent or lacks one of its cases or masses.
    """
    from mammo_common.cli_support import track

    diag_store: DiagnosisStore = open_store(diagnosis, "diagnosis")  # type: ignore[assignment]
    masses_store = _open_masses(diag_store, None if masses is None else Path(masses))
    position = {cid: i for i, cid in enumerate(masses_store.case_ids)}
    missing = [c for c in diag_store.case_ids if c not in position]
    if missing:
        raise StoreError(
            f"lacks {len(missing)} case(s) of the diagnosis store (first: {missing[:3]})",
            path=masses_store.path,
            field="cases",
            fix="pass the masses store the diagnosis was predicted from with --masses",
        )
    transforms = masses_store.transforms
    rows: list[dict[str, Any]] = []
    pairs = list(zip(diag_store.meta.cases, diag_store.meta.diagnoses, strict=True))
    for record, diag in track(pairs, "mammo results"):
        i = position[record.case_id]
        rows.extend(_case_rows(record, diag, masses_store, i, transforms[i]))
    cases = [r for r in rows if r["row_type"] == "case"]
    lineage = _lineage(masses_store)
    breast_producer = (lineage["breast_store"] or {}).get("producer") or {}
    meta = diag_store.meta
    metadata: dict[str, Any] = {
        "generated_by": {"package": "mammo-common", "version": __version__,
                         "command": "mammo results"},
        "diagnosis_store": {"path": str(diag_store.path), "digest": diag_store.digest,
                            "producer": _producer(meta.producer)},
        "masses_store": {"path": str(masses_store.path), "digest": masses_store.digest,
                         "producer": _producer(masses_store.meta.producer)},
        **lineage,
        "model_ids": {
            "breastseg": breast_producer.get("model_ids"),
            "massseg": list(masses_store.meta.producer.model_ids),
            "massclass": list(meta.producer.model_ids),
        },
        "threshold": meta.threshold,
        "threshold_method": meta.threshold_method,
        "segmentation_threshold": masses_store.meta.threshold,
        "min_object_pixels": masses_store.meta.min_object_pixels,
        "mass_probability": "mean and max of the masses store's mass_probs over the mass's own "
        "pixels on the breast crop",
        "coordinates": "native image pixels; origin at the image's top-left corner, pixel (r, c) "
        "spans [r, r+1) x [c, c+1) (DICOM SCOORD convention); mm = pixels x pixel spacing",
        "n_cases": len(cases),
        "n_masses": len(rows) - len(cases),
        "n_no_mass_found": sum(r["label"] == "no_mass_found" for r in cases),
        "n_malignant_cases": sum(r["label"] == "malignant" for r in cases),
        "columns": {c: COLUMN_HELP[c] for c in COLUMNS},
    }
    return ResultsTable(columns=list(COLUMNS), rows=rows, metadata=metadata)


def _csv_text(table: ResultsTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if row[c] is None else row[c] for c in table.columns])
    return buffer.getvalue()


def write_table(table: ResultsTable, csv_path: str | Path, json_path: str | Path) -> None:
    """Write a table as ``results.csv`` and ``results.json`` (each atomically, CSV first).

    The JSON is ``{"format": "mammo-results", "format_version", "metadata", "columns",
    "rows"}``; an empty cell is ``""`` in the CSV and ``null`` in the JSON.
    """
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metadata": table.metadata,
        "columns": table.columns,
        "rows": table.rows,
    }
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    write_text_atomic(Path(csv_path), _csv_text(table))
    write_text_atomic(Path(json_path), text)


def write_results(config: ResultsConfig) -> ResultsSummary:
    """Write ``results.csv`` and ``results.json`` of a diagnosis store (each atomically).

    Args:
        config: The stores and the output paths.

    Returns:
        What was written, with counts.

    Raises:
        StoreError: See :func:`results_table`.
        MammoError: An output exists (without ``overwrite``), would overwrite an input, or the
            CSV and JSON paths are the same.
    """
    csv_path, json_path = Path(config.csv_path), Path(config.json_path)
    if csv_path.resolve() == json_path.resolve():
        raise ConfigError("the CSV and the JSON would be the same file", path=csv_path,
                          field="--csv/--json", fix="give two different paths")
    inputs = tuple(p for p in (config.diagnosis, config.masses) if p is not None)
    for path in (csv_path, json_path):
        check_output_path(path, overwrite=config.overwrite, inputs=inputs)
        if path.exists() and path.is_dir():
            raise MammoError("is a folder", path=path, fix="give a file path")
    table = results_table(config.diagnosis, config.masses)
    write_table(table, csv_path, json_path)
    meta = table.metadata
    return ResultsSummary(
        csv=csv_path,
        json_out=json_path,
        diagnosis=Path(config.diagnosis),
        masses=Path(meta["masses_store"]["path"]),
        n_cases=meta["n_cases"],
        n_masses=meta["n_masses"],
        n_no_mass_found=meta["n_no_mass_found"],
        n_malignant_cases=meta["n_malignant_cases"],
    )
