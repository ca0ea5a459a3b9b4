"""Open and validate stores of any kind: ``open_store(path)``.

A reader refuses a path that is not a mammo store, a store of the wrong kind, an unknown schema
version or arrays that disagree with the metadata, with a :class:`~mammo_common.errors.StoreError`
naming the store, the field and the fix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import zarr

from mammo_common.errors import StoreError
from mammo_common.schema import (
    CASE_KEY,
    META_KEY,
    META_MODELS,
    SCHEMA_VERSION,
    STORE_KINDS,
    BreastMeta,
    CaseRecord,
    CaseTransform,
    DiagnosisMeta,
    MammogramsMeta,
    MassesMeta,
    ParentRef,
    is_supported,
)
from mammo_common.store.arrays import BINARY_ARRAYS, CASE_ARRAYS, STACKED_ARRAYS


def _pydantic_problem(exc: pydantic.ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "metadata"
    return field, f"{err.get('msg', 'invalid')} ({len(exc.errors())} problem(s) in all)"


def meta_digest(meta: dict[str, Any]) -> str:
    """A digest of a store's metadata, used to reference it as a parent."""
    payload = json.dumps(meta, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class CaseData:
    """One case of a ``mammograms`` store, loaded into memory."""

    record: CaseRecord
    image: np.ndarray
    breast_mask: np.ndarray | None = None
    mass_mask: np.ndarray | None = None
    mass_labels: np.ndarray | None = None


class Store:
    """A validated store opened read-only. Use :func:`open_store` to get one."""

    kind: str = ""

    def __init__(self, path: Path, group: zarr.Group, meta: Any, raw_meta: dict[str, Any]):
        self.path = path
        self.group = group
        self.meta = meta
        self._raw_meta = raw_meta

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} kind={self.kind} cases={len(self)}>"

    def __len__(self) -> int:
        return len(self.case_ids)

    @property
    def case_ids(self) -> list[str]:
        """Case ids in store order."""
        return list(self.meta.case_ids)

    @property
    def digest(self) -> str:
        """Digest of this store's metadata."""
        return meta_digest(self._raw_meta)

    def as_parent(self) -> ParentRef:
        """A reference to this store for the lineage of a store derived from it."""
        return ParentRef(path=str(self.path), kind=self.kind, digest=self.digest)

    def _fail(self, field: str, problem: str, fix: str) -> StoreError:
        return StoreError(problem, path=self.path, field=field, fix=fix)

    def check(self, *, deep: bool = False) -> None:
        """Check the arrays against the metadata; ``deep`` also reads every value."""


class MammogramsStore(Store):
    """A ``mammograms`` store: one group per case at native resolution."""

    kind = "mammograms"
    meta: MammogramsMeta

    def record(self, case_id: str) -> CaseRecord:
        """The case record of ``case_id``."""
        group = self._case_group(case_id)
        try:
            return CaseRecord.model_validate(group.attrs[CASE_KEY])
        except KeyError:
            raise self._fail(
                f"cases/{case_id}.{CASE_KEY}", "the case record is missing", "re-run mammo ingest"
            ) from None
        except pydantic.ValidationError as exc:
            field, msg = _pydantic_problem(exc)
            raise self._fail(f"cases/{case_id}.{field}", msg, "re-run mammo ingest") from None

    def records(self) -> list[CaseRecord]:
        """All case records in store order."""
        return [self.record(cid) for cid in self.case_ids]

    def _case_group(self, case_id: str) -> zarr.Group:
        try:
            group = self.group[f"cases/{case_id}"]
        except KeyError:
            raise self._fail(
                f"cases/{case_id}",
                "the case listed in case_ids has no group",
                "re-run mammo ingest to rebuild the store",
            ) from None
        if not isinstance(group, zarr.Group):
            raise self._fail(f"cases/{case_id}", "is not a group", "re-run mammo ingest")
        return group

    def array(self, case_id: str, name: str) -> np.ndarray | None:
        """Read one array of a case (``image``, ``breast_mask``, ``mass_mask``, ``mass_labels``)."""
        group = self._case_group(case_id)
        if name not in group:
            if CASE_ARRAYS[name][1]:
                raise self._fail(f"cases/{case_id}/{name}", "is missing", "re-run mammo ingest")
            return None
        return np.asarray(group[name][...])

    def load(self, case_id: str) -> CaseData:
        """Load a case with all its arrays."""
        return CaseData(
            record=self.record(case_id),
            image=self.array(case_id, "image"),  # type: ignore[arg-type]
            breast_mask=self.array(case_id, "breast_mask"),
            mass_mask=self.array(case_id, "mass_mask"),
            mass_labels=self.array(case_id, "mass_labels"),
        )

    def iter_cases(self) -> Iterator[CaseData]:
        """Stream the cases one at a time (constant memory)."""
        for case_id in self.case_ids:
            yield self.load(case_id)

    def check(self, *, deep: bool = False) -> None:
        if "cases" not in self.group and self.case_ids:
            raise self._fail("cases", "the group of cases is missing", "re-run mammo ingest")
        for case_id in self.case_ids:
            group = self._case_group(case_id)
            record = self.record(case_id)
            if record.case_id != case_id:
                raise self._fail(
                    f"cases/{case_id}.{CASE_KEY}.case_id",
                    f"the record says {record.case_id!r}",
                    "re-run mammo ingest",
                )
            shape = None
            for name, (dtype, required) in CASE_ARRAYS.items():
                if name not in group:
                    if required:
                        raise self._fail(f"cases/{case_id}/{name}", "is missing", "re-run ingest")
                    continue
                arr = group[name]
                field = f"cases/{case_id}/{name}"
                if arr.ndim != 2:
                    raise self._fail(field, f"has {arr.ndim} dimensions, not 2", "re-run ingest")
                if arr.dtype != dtype:
                    raise self._fail(field, f"has dtype {arr.dtype}, not {dtype}", "re-run ingest")
                if shape is None:
                    shape = tuple(arr.shape)
                    if shape != tuple(record.original_shape):
                        raise self._fail(
                            field,
                            f"shape {shape} differs from original_shape {record.original_shape}",
                            "re-run mammo ingest",
                        )
                elif tuple(arr.shape) != shape:
                    raise self._fail(
                        field,
                        f"shape {arr.shape} differs from the image's {shape}",
                        "re-run ingest",
                    )
                if deep and name in BINARY_ARRAYS:
                    _check_binary(self, field, np.asarray(arr[...]))


def _check_binary(store: Store, field: str, values: np.ndarray) -> None:
    if values.size and int(values.max()) > 1:
        raise store._fail(field, "holds values other than 0 and 1", "re-create the store")


class StackedStore(Store):
    """A ``breast`` or ``masses`` store: fixed-size arrays stacked over cases."""

    meta: BreastMeta | MassesMeta

    @property
    def image_size(self) -> tuple[int, int]:
        """(rows, cols) of every stored image."""
        return tuple(self.meta.image_size)  # type: ignore[return-value]

    @property
    def cases(self) -> list[CaseRecord]:
        """Case records in store order."""
        return list(self.meta.cases)

    @property
    def transforms(self) -> list[CaseTransform]:
        """Per-case native-to-store transforms in store order."""
        return list(self.meta.transforms)

    def has(self, name: str) -> bool:
        """Whether the store holds array ``name``."""
        return name in self.group

    def array(self, name: str) -> zarr.Array:
        """The (lazy) Zarr array ``name``; index it to read, e.g. ``store.array("images")[i]``."""
        if name not in self.group:
            raise self._fail(name, "array is missing", f"this {self.kind} store has no {name}")
        return self.group[name]  # type: ignore[return-value]

    def index_of(self, case_id: str) -> int:
        """Position of ``case_id`` in the stacked arrays."""
        try:
            return self.case_ids.index(case_id)
        except ValueError:
            raise self._fail("cases", f"no case {case_id!r}", "check the case id") from None

    def check(self, *, deep: bool = False) -> None:
        n = len(self.meta.cases)
        shape = (n, *self.image_size)
        for name, (dtype, required) in STACKED_ARRAYS[self.kind].items():
            if name == "mass_masks":
                required = self.meta.has_mass_masks
            if name not in self.group:
                if required:
                    raise self._fail(name, "array is missing", f"re-create the {self.kind} store")
                continue
            arr = self.group[name]
            if tuple(arr.shape) != shape:
                raise self._fail(
                    name,
                    f"has shape {tuple(arr.shape)} but {n} cases of {self.image_size} need {shape}",
                    f"re-create the {self.kind} store",
                )
            if arr.dtype != dtype:
                raise self._fail(name, f"has dtype {arr.dtype}, not {dtype}", "re-create the store")
            if deep and name in BINARY_ARRAYS:
                for i in range(n):
                    _check_binary(self, f"{name}[{i}]", np.asarray(arr[i]))


class BreastStore(StackedStore):
    """A ``breast`` store written by breast segmentation."""

    kind = "breast"
    meta: BreastMeta


class MassesStore(StackedStore):
    """A ``masses`` store written by mass segmentation."""

    kind = "masses"
    meta: MassesMeta


class DiagnosisStore(Store):
    """A ``diagnosis`` store written by mass classification."""

    kind = "diagnosis"
    meta: DiagnosisMeta

    @property
    def probabilities(self) -> np.ndarray:
        """Case-level malignancy probabilities (NaN where no mass was found)."""
        return np.asarray(self.group["probabilities"][...])

    def check(self, *, deep: bool = False) -> None:
        if "probabilities" not in self.group:
            raise self._fail("probabilities", "array is missing", "re-run massclass predict")
        arr = self.group["probabilities"]
        if tuple(arr.shape) != (len(self.meta.cases),):
            raise self._fail(
                "probabilities",
                f"has shape {tuple(arr.shape)}, expected ({len(self.meta.cases)},)",
                "re-run massclass predict",
            )


STORE_CLASSES: dict[str, type[Store]] = {
    "mammograms": MammogramsStore,
    "breast": BreastStore,
    "masses": MassesStore,
    "diagnosis": DiagnosisStore,
}


def read_meta(path: str | Path) -> dict[str, Any]:
    """Read the raw ``mammo`` metadata of a store without validating it."""
    path = Path(path)
    if not path.exists():
        raise StoreError(
            "does not exist", path=path, fix="check the path, or create it with the stage before"
        )
    if not (path / "zarr.json").is_file():
        raise StoreError(
            "is not a Zarr v3 store (no zarr.json at its root)",
            path=path,
            fix="point to a store written by mammo (ingest or a stage's predict)",
        )
    try:
        group = zarr.open_group(store=str(path), mode="r", zarr_format=3)
    except Exception as exc:  # zarr raises several types for unreadable metadata
        raise StoreError(
            f"cannot be opened as a Zarr group ({type(exc).__name__}: {exc})",
            path=path,
            fix="re-create the store; it may be damaged or only half written",
        ) from None
    attrs = group.attrs.asdict()
    if META_KEY not in attrs:
        raise StoreError(
            f"is a Zarr group but has no {META_KEY!r} attribute, so it is not a mammo store "
            "(or it was never finished)",
            path=path,
            field=META_KEY,
            fix="re-create it with mammo ingest or the stage that writes it",
        )
    return attrs[META_KEY]


def open_store(
    path: str | Path,
    kind: str | tuple[str, ...] | None = None,
    *,
    deep: bool = False,
) -> Store:
    """Open a store read-only and validate it.

    Args:
        path: The store's folder (``*.zarr``).
        kind: The kind (or kinds) the caller accepts; ``None`` accepts any.
        deep: Also read every array to check values (slow on large stores).

    Returns:
        A :class:`MammogramsStore`, :class:`BreastStore`, :class:`MassesStore` or
        :class:`DiagnosisStore`.

    Raises:
        StoreError: naming the store, the field and the fix.
    """
    path = Path(path)
    raw = read_meta(path)
    if not isinstance(raw, dict):
        raise StoreError("metadata is not an object", path=path, field=META_KEY, fix="re-create")
    found = raw.get("kind")
    if found not in STORE_KINDS:
        raise StoreError(
            f"unknown store kind {found!r} (known: {', '.join(STORE_KINDS)})",
            path=path,
            field=f"{META_KEY}.kind",
            fix="re-create the store with a current mammo release",
        )
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted and found not in wanted:
        raise StoreError(
            f"is a {found!r} store, but a {' or '.join(repr(k) for k in wanted)} store is needed",
            path=path,
            field=f"{META_KEY}.kind",
            fix=_kind_fix(wanted[0]),
        )
    version = str(raw.get("schema_version", ""))
    if not is_supported(version):
        raise StoreError(
            f"schema_version {version!r} is not supported (this release reads {SCHEMA_VERSION})",
            path=path,
            field=f"{META_KEY}.schema_version",
            fix="upgrade mammo-common, or re-create the store with this release",
        )
    try:
        meta = META_MODELS[found].model_validate(raw)
    except pydantic.ValidationError as exc:
        field, msg = _pydantic_problem(exc)
        raise StoreError(
            msg, path=path, field=f"{META_KEY}.{field}", fix="re-create the store"
        ) from None
    group = zarr.open_group(store=str(path), mode="r", zarr_format=3)
    store = STORE_CLASSES[found](path, group, meta, raw)
    store.check(deep=deep)
    return store


def _kind_fix(kind: str) -> str:
    return {
        "mammograms": "pass the store written by `mammo ingest`",
        "breast": "pass the store written by `breastseg predict`",
        "masses": "pass the store written by `massseg predict`",
        "diagnosis": "pass the store written by `massclass predict`",
    }[kind]
