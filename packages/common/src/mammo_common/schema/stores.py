"""Typed metadata of the four store kinds, kept under the ``"mammo"`` attribute of a store's root.

Each model checks consistency *within* the metadata (ids unique, lists aligned); the readers in
:mod:`mammo_common.store` check the arrays against it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mammo_common.schema.cases import CaseRecord
from mammo_common.schema.lineage import ParentRef, Producer
from mammo_common.schema.version import SCHEMA_VERSION, is_supported

StoreKind = Literal["mammograms", "breast", "masses", "diagnosis"]
STORE_KINDS: tuple[str, ...] = ("mammograms", "breast", "masses", "diagnosis")

#: Attribute key under which the metadata lives in the root group's attributes.
META_KEY = "mammo"
#: Attribute key of a case group's record in a ``mammograms`` store.
CASE_KEY = "mammo_case"


class SkippedFile(BaseModel):
    """A source file that ingest could not use, and why."""

    model_config = ConfigDict(extra="forbid")

    path: str
    reason: str


class _StoreMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    producer: Producer
    parents: list[ParentRef] = Field(default_factory=list)

    @field_validator("schema_version")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not is_supported(value):
            raise ValueError(
                f"schema_version {value!r} is not supported by this mammo-common "
                f"(writes {SCHEMA_VERSION}); upgrade mammo-common or re-create the store"
            )
        return value


def _check_unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    dup = [i for i in ids if i in seen or seen.add(i)]  # type: ignore[func-returns-value]
    if dup:
        raise ValueError(f"{what} has duplicate case ids: {sorted(set(dup))[:5]}")


class MammogramsMeta(_StoreMeta):
    """Metadata of a ``mammograms`` store (written by ``mammo ingest``).

    The store holds one group per case under ``cases/<case_id>`` with arrays ``image``
    (uint16, native resolution) and optional ``breast_mask``, ``mass_mask`` (uint8 0/1) and
    ``mass_labels`` (uint8, value k = abnormality k); the group's ``mammo_case`` attribute is the
    :class:`CaseRecord`.
    """

    kind: Literal["mammograms"] = "mammograms"
    source_format: str
    case_ids: list[str]
    skipped: list[SkippedFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ids(self) -> MammogramsMeta:
        _check_unique(self.case_ids, "case_ids")
        return self


class CaseTransform(BaseModel):
    """How a case's native image maps onto the fixed-size image of a stacked store.

    A native pixel ``(r, c)`` inside the crop box lands at
    ``((r - y0) * scale_y, (c - x0) * scale_x)`` in the output; :mod:`mammo_common.transforms`
    implements both directions.

    Attributes:
        original_shape: Native image shape (rows, cols).
        crop_box: ``(y0, x0, y1, x1)`` in native pixels, end-exclusive.
        output_shape: Shape of the stored image (rows, cols).
    """

    model_config = ConfigDict(extra="forbid")

    original_shape: tuple[int, int]
    crop_box: tuple[int, int, int, int]
    output_shape: tuple[int, int]

    @model_validator(mode="after")
    def _box_inside(self) -> CaseTransform:
        y0, x0, y1, x1 = self.crop_box
        h, w = self.original_shape
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(f"crop_box {self.crop_box} is not inside original_shape {(h, w)}")
        return self

    @property
    def scale_y(self) -> float:
        """Output rows per native row."""
        return self.output_shape[0] / (self.crop_box[2] - self.crop_box[0])

    @property
    def scale_x(self) -> float:
        """Output columns per native column."""
        return self.output_shape[1] / (self.crop_box[3] - self.crop_box[1])


class _StackedMeta(_StoreMeta):
    image_size: tuple[int, int]
    cases: list[CaseRecord]
    transforms: list[CaseTransform]
    has_mass_masks: bool = False

    @model_validator(mode="after")
    def _aligned(self) -> _StackedMeta:
        if len(self.cases) != len(self.transforms):
            raise ValueError(
                f"cases ({len(self.cases)}) and transforms ({len(self.transforms)}) "
                "differ in length"
            )
        _check_unique([c.case_id for c in self.cases], "cases")
        for case, tf in zip(self.cases, self.transforms, strict=True):
            if tuple(tf.output_shape) != tuple(self.image_size):
                raise ValueError(
                    f"transform of case {case.case_id} has output_shape {tf.output_shape}, "
                    f"not the store's image_size {self.image_size}"
                )
        return self

    @property
    def case_ids(self) -> list[str]:
        """Case ids in store order."""
        return [c.case_id for c in self.cases]


class BreastMeta(_StackedMeta):
    """Metadata of a ``breast`` store (written by the breastseg stage).

    Arrays: ``images`` (N, H, W) uint16, background removed and cropped; ``breast_masks``
    (N, H, W) uint8; ``mass_masks`` (N, H, W) uint8 when ``has_mass_masks``.
    """

    kind: Literal["breast"] = "breast"
    method: str = Field(default="unet", description="How breasts were found (unet, threshold).")


class MassesMeta(_StackedMeta):
    """Metadata of a ``masses`` store (written by the massseg stage).

    Arrays: everything of a ``breast`` store, plus ``mass_probs`` (N, H, W) float16 and
    ``mass_pred`` (N, H, W) uint8, the post-processed binary prediction.
    """

    kind: Literal["masses"] = "masses"
    threshold: float = Field(default=0.5, gt=0, lt=1)
    min_object_pixels: int = Field(default=30, ge=0)
    largest_component: bool = False
    tta: bool = False


class MassDiagnosis(BaseModel):
    """Classification of one predicted mass (a connected component of ``mass_pred``)."""

    model_config = ConfigDict(extra="forbid")

    mass_index: int = Field(ge=1)
    bbox: tuple[int, int, int, int] = Field(description="(y0, x0, y1, x1) in store pixels.")
    area: int = Field(ge=0)
    probability: float = Field(ge=0, le=1)
    label: Literal["benign", "malignant"]


class CaseDiagnosis(BaseModel):
    """Classification of one case: its masses and the case-level summary (most malignant)."""

    model_config = ConfigDict(extra="forbid")

    case_id: str
    masses: list[MassDiagnosis] = Field(default_factory=list)
    probability: float | None = Field(default=None, ge=0, le=1)
    label: Literal["benign", "malignant", "no_mass_found"]
    truth: Literal["benign", "malignant", "unknown"] = "unknown"


class DiagnosisMeta(_StoreMeta):
    """Metadata of a ``diagnosis`` store (written by the massclass stage).

    Array: ``probabilities`` (N,) float32, the case-level malignancy probability (NaN when no
    mass was found). The per-mass table is in ``diagnoses``.
    """

    kind: Literal["diagnosis"] = "diagnosis"
    cases: list[CaseRecord]
    diagnoses: list[CaseDiagnosis]
    threshold: float = Field(default=0.5, gt=0, lt=1)
    threshold_method: str = "fixed"

    @model_validator(mode="after")
    def _aligned(self) -> DiagnosisMeta:
        ids = [c.case_id for c in self.cases]
        _check_unique(ids, "cases")
        if ids != [d.case_id for d in self.diagnoses]:
            raise ValueError("diagnoses must list the same case ids as cases, in the same order")
        return self

    @property
    def case_ids(self) -> list[str]:
        """Case ids in store order."""
        return [c.case_id for c in self.cases]


StoreMeta = Annotated[
    MammogramsMeta | BreastMeta | MassesMeta | DiagnosisMeta, Field(discriminator="kind")
]

META_MODELS: dict[str, type[_StoreMeta]] = {
    "mammograms": MammogramsMeta,
    "breast": BreastMeta,
    "masses": MassesMeta,
    "diagnosis": DiagnosisMeta,
}
