"""Writers for each store kind. Every writer stages under a temporary name and renames on success.

Use them as context managers::

    with MammogramsWriter(out, source_format="cbis-ddsm", producer=prod) as w:
        for record, image, mask in cases:
            w.add_case(record, image, mass_mask=mask)
    # the store exists whole here; on any exception it does not exist at all
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from mammo_common.errors import MammoError, StoreError
from mammo_common.schema import (
    CASE_KEY,
    META_KEY,
    BreastMeta,
    CaseDiagnosis,
    CaseRecord,
    CaseTransform,
    DiagnosisMeta,
    MammogramsMeta,
    MassesMeta,
    ParentRef,
    Producer,
    SkippedFile,
)
from mammo_common.store import atomic
from mammo_common.store.arrays import CASE_ARRAYS, STACKED_ARRAYS
from mammo_common.store.reader import open_store

#: Chunk edge for native-resolution images.
NATIVE_CHUNK = 1024


class _AtomicStoreWriter:
    """Common staging/commit logic."""

    kind = ""

    def __init__(self, path: str | Path, *, overwrite: bool = False, inputs: tuple = ()):
        self.path = Path(path)
        atomic.check_output_path(self.path, overwrite=overwrite, inputs=tuple(inputs))
        self._tmp: Path | None = None
        self.group: zarr.Group | None = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale_temporaries(self.path)
        self._tmp = atomic.temporary_sibling(self.path)
        self.group = zarr.open_group(store=str(self._tmp), mode="w", zarr_format=3)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tmp is not None
        if exc_type is not None:
            atomic.discard(self._tmp)
            return
        try:
            meta = self._finish()
            self.group.attrs[META_KEY] = meta  # type: ignore[union-attr]
            open_store(self._tmp, self.kind)  # refuse to publish an inconsistent store
        except BaseException:
            atomic.discard(self._tmp)
            raise
        atomic.commit(self._tmp, self.path)

    def _finish(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def _as(name: str, array: np.ndarray, dtype: np.dtype, where: str) -> np.ndarray:
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise MammoError(f"{name} holds NaN or infinite values", field=where, fix="clean the input")
    if dtype.kind == "u" and array.size:
        info = np.iinfo(dtype)
        lo, hi = array.min(), array.max()
        if lo < info.min or hi > info.max:
            raise MammoError(
                f"{name} values {lo}..{hi} do not fit {dtype}", field=where, fix="rescale first"
            )
    return array.astype(dtype, copy=False)


class MammogramsWriter(_AtomicStoreWriter):
    """Write a ``mammograms`` store case by case.

    Args:
        path: Output store path.
        source_format: The dataset format it was ingested from.
        producer: Who writes it.
        parents: What it derives from (the raw folder).
        overwrite: Replace an existing store.
        inputs: Input paths the output must not overwrite.
    """

    kind = "mammograms"

    def __init__(
        self,
        path: str | Path,
        *,
        source_format: str,
        producer: Producer,
        parents: list[ParentRef] | None = None,
        overwrite: bool = False,
        inputs: tuple = (),
    ):
        super().__init__(path, overwrite=overwrite, inputs=inputs)
        self.source_format = source_format
        self.producer = producer
        self.parents = parents or []
        self.case_ids: list[str] = []
        self.skipped: list[SkippedFile] = []

    def add_case(
        self,
        record: CaseRecord,
        image: np.ndarray,
        *,
        breast_mask: np.ndarray | None = None,
        mass_mask: np.ndarray | None = None,
        mass_labels: np.ndarray | None = None,
    ) -> None:
        """Add one case; arrays must share the image's 2-D shape."""
        assert self.group is not None, "use the writer as a context manager"
        if record.case_id in self.case_ids:
            raise MammoError(
                f"duplicate case id {record.case_id!r}",
                path=record.source_path,
                fix="make case ids unique (patient, side, view and image number)",
            )
        image = np.asarray(image)
        if image.ndim != 2:
            raise MammoError(f"image has shape {image.shape}, not 2-D", path=record.source_path)
        if tuple(record.original_shape) != image.shape:
            record = record.model_copy(update={"original_shape": image.shape})
        grp = self.group.create_group(f"cases/{record.case_id}")
        chunks = (min(NATIVE_CHUNK, image.shape[0]), min(NATIVE_CHUNK, image.shape[1]))
        arrays = {
            "image": image,
            "breast_mask": breast_mask,
            "mass_mask": mass_mask,
            "mass_labels": mass_labels,
        }
        for name, data in arrays.items():
            if data is None:
                continue
            dtype = CASE_ARRAYS[name][0]
            data = _as(name, data, dtype, f"cases/{record.case_id}/{name}")
            if data.shape != image.shape:
                raise MammoError(
                    f"{name} shape {data.shape} differs from image shape {image.shape}",
                    path=record.source_path,
                    fix="resize the mask to the image (nearest neighbour) before adding it",
                )
            arr = grp.create_array(name, shape=data.shape, chunks=chunks, dtype=dtype, fill_value=0)
            arr[...] = data
        grp.attrs[CASE_KEY] = record.model_dump(mode="json")
        self.case_ids.append(record.case_id)

    def skip(self, path: str, reason: str) -> None:
        """Record a source file that could not be used."""
        self.skipped.append(SkippedFile(path=str(path), reason=reason))

    def _finish(self) -> dict[str, Any]:
        if not self.case_ids:
            raise MammoError(
                "no usable case was found, so no store was written",
                path=self.path,
                fix="check the source folder and the skipped-file report",
            )
        meta = MammogramsMeta(
            producer=self.producer,
            parents=self.parents,
            source_format=self.source_format,
            case_ids=self.case_ids,
            skipped=self.skipped,
        )
        return meta.model_dump(mode="json")


class StackedStoreWriter(_AtomicStoreWriter):
    """Write a ``breast`` or ``masses`` store: fixed-size arrays stacked over a known case count.

    Args:
        path: Output store path.
        kind: ``"breast"`` or ``"masses"``.
        n_cases: Number of cases that will be written (arrays are pre-allocated).
        image_size: (rows, cols) of every image.
        producer: Who writes it.
        parents: The stores it derives from.
        with_mass_masks: Whether ground-truth ``mass_masks`` are carried.
        meta_fields: Extra kind-specific metadata (e.g. ``threshold`` for masses, ``method``).
        overwrite: Replace an existing store.
        inputs: Input paths the output must not overwrite.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        kind: str,
        n_cases: int,
        image_size: tuple[int, int],
        producer: Producer,
        parents: list[ParentRef] | None = None,
        with_mass_masks: bool = False,
        meta_fields: dict[str, Any] | None = None,
        overwrite: bool = False,
        inputs: tuple = (),
    ):
        if kind not in STACKED_ARRAYS:
            raise ValueError(f"kind must be one of {sorted(STACKED_ARRAYS)}, not {kind!r}")
        super().__init__(path, overwrite=overwrite, inputs=inputs)
        self.kind = kind
        self.n_cases = int(n_cases)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.producer = producer
        self.parents = parents or []
        self.with_mass_masks = with_mass_masks
        self.meta_fields = meta_fields or {}
        self._cases: list[CaseRecord | None] = [None] * self.n_cases
        self._transforms: list[CaseTransform | None] = [None] * self.n_cases
        self._arrays: dict[str, zarr.Array] = {}

    def __enter__(self):
        super().__enter__()
        if self.n_cases < 1:
            raise StoreError("no case to write", path=self.path, fix="check the input store")
        shape = (self.n_cases, *self.image_size)
        for name, (dtype, _required) in STACKED_ARRAYS[self.kind].items():
            if name == "mass_masks" and not self.with_mass_masks:
                continue
            self._arrays[name] = self.group.create_array(  # type: ignore[union-attr]
                name, shape=shape, chunks=(1, *self.image_size), dtype=dtype, fill_value=0
            )
        return self

    def write_case(
        self, index: int, record: CaseRecord, transform: CaseTransform, **arrays: np.ndarray
    ) -> None:
        """Write case ``index`` (0-based) with every required array of this kind."""
        if not 0 <= index < self.n_cases:
            raise IndexError(f"case index {index} outside 0..{self.n_cases - 1}")
        missing = [n for n in self._arrays if n not in arrays]
        extra = [n for n in arrays if n not in self._arrays]
        if missing or extra:
            raise ValueError(f"{self.kind} case needs arrays {sorted(self._arrays)}; "
                             f"missing {missing}, unexpected {extra}")
        for name, data in arrays.items():
            dtype = STACKED_ARRAYS[self.kind][name][0]
            data = _as(name, data, dtype, f"{name}[{index}] ({record.case_id})")
            if data.shape != self.image_size:
                raise ValueError(f"{name} of {record.case_id} has shape {data.shape}, "
                                 f"expected {self.image_size}")
            self._arrays[name][index] = data
        self._cases[index] = record
        self._transforms[index] = transform

    def _finish(self) -> dict[str, Any]:
        unwritten = [i for i, c in enumerate(self._cases) if c is None]
        if unwritten:
            raise StoreError(
                f"{len(unwritten)} of {self.n_cases} cases were never written "
                f"(first: {unwritten[:5]})",
                path=self.path,
                fix="this is a bug in the producing stage; please report it",
            )
        model = BreastMeta if self.kind == "breast" else MassesMeta
        meta = model(
            producer=self.producer,
            parents=self.parents,
            image_size=self.image_size,
            cases=self._cases,  # type: ignore[arg-type]
            transforms=self._transforms,  # type: ignore[arg-type]
            has_mass_masks=self.with_mass_masks,
            **self.meta_fields,
        )
        return meta.model_dump(mode="json")


def write_diagnosis_store(
    path: str | Path,
    *,
    cases: list[CaseRecord],
    diagnoses: list[CaseDiagnosis],
    producer: Producer,
    parents: list[ParentRef] | None = None,
    threshold: float = 0.5,
    threshold_method: str = "fixed",
    overwrite: bool = False,
    inputs: tuple = (),
) -> Path:
    """Write a ``diagnosis`` store in one go (it is small: one row per case and per mass)."""
    meta = DiagnosisMeta(
        producer=producer,
        parents=parents or [],
        cases=cases,
        diagnoses=diagnoses,
        threshold=threshold,
        threshold_method=threshold_method,
    )
    probs = np.array(
        [np.nan if d.probability is None else d.probability for d in diagnoses], dtype=np.float32
    )

    class _DiagnosisWriter(_AtomicStoreWriter):
        kind = "diagnosis"

        def _finish(self) -> dict[str, Any]:
            arr = self.group.create_array(  # type: ignore[union-attr]
                "probabilities", shape=probs.shape, dtype="float32", fill_value=float("nan")
            )
            arr[...] = probs
            return meta.model_dump(mode="json")

    with _DiagnosisWriter(path, overwrite=overwrite, inputs=inputs):
        pass
    return Path(path)
