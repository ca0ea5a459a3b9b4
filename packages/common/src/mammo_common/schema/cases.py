"""The case record: what is known about one mammogram, whatever dataset it came from."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

Laterality = Literal["L", "R", "unknown"]
View = Literal["CC", "MLO", "other"]
Abnormality = Literal["mass", "calcification", "none", "unknown"]
Pathology = Literal["BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT", "unknown"]
PathologySource = Literal["biopsy", "birads_proxy", "synthetic", "unknown"]

#: Case ids become Zarr group names and file names, so they are restricted to a safe alphabet.
CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


def safe_case_id(text: str) -> str:
    """Turn any identifier into a valid case id (letters, digits, ``_``, ``.``, ``-``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "_", text.strip()).strip("_.-")
    return cleaned[:200] or "case"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class MassRecord(_Strict):
    """One annotated abnormality of a mammogram (kept separately for per-mass work).

    Attributes:
        mass_id: 1-based index of the abnormality within its image; the value it has in the
            case's ``mass_labels`` array when that array is stored.
        abnormality: Kind of abnormality (mass or calcification).
        pathology: Biopsy-proven (or proxy) pathology of this abnormality.
        shape: BI-RADS mass shape descriptor (e.g. ROUND, OVAL, IRREGULAR) when known.
        margins: BI-RADS margin descriptor (e.g. CIRCUMSCRIBED, SPICULATED) when known.
        birads: BI-RADS assessment of this abnormality, 0-6.
        subtlety: CBIS-DDSM subtlety rating, 0-5.
        bbox: Bounding box ``(y0, x0, y1, x1)`` in native pixels, end-exclusive.
        area: Mask area in native pixels.
    """

    mass_id: int = Field(ge=1)
    abnormality: Abnormality = "mass"
    pathology: Pathology = "unknown"
    shape: str | None = None
    margins: str | None = None
    birads: int | None = Field(default=None, ge=0, le=6)
    subtlety: int | None = Field(default=None, ge=0, le=5)
    bbox: tuple[int, int, int, int] | None = None
    area: int | None = Field(default=None, ge=0)


class DicomRef(_Strict):
    """Identifiers of the DICOM image a case was read from (schema 1.1).

    What a result (a table row, a DICOM Segmentation) needs to point back at the source image.
    Every attribute is copied as the file has it; ``None`` where the file lacks it.

    Attributes:
        sop_instance_uid: SOPInstanceUID of the image.
        sop_class_uid: SOPClassUID (e.g. Digital Mammography X-Ray Image Storage).
        study_instance_uid: StudyInstanceUID.
        series_instance_uid: SeriesInstanceUID.
        study_id: StudyID.
        modality: Modality (``MG`` for mammograms).
        manufacturer: Manufacturer of the equipment.
        transfer_syntax_uid: The file's transfer syntax (how its pixel data was encoded).
    """

    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    study_id: str | None = None
    modality: str | None = None
    manufacturer: str | None = None
    transfer_syntax_uid: str | None = None


class CaseRecord(_Strict):
    """Everything the pipeline knows about one mammogram (one image of one breast in one view).

    Ingest fills what the source dataset has; the rest stays ``None``/``"unknown"``.
    """

    case_id: str = Field(description="Unique id of the image within the store.")
    patient_id: str = Field(description="Patient id; splits are grouped by it.")
    laterality: Laterality = "unknown"
    view: View = "other"
    abnormality: Abnormality = "unknown"
    pathology: Pathology = "unknown"
    pathology_source: PathologySource = "unknown"
    birads: int | None = Field(default=None, ge=0, le=6)
    density: int | None = Field(default=None, ge=1, le=4)
    source_dataset: str = "unknown"
    source_path: str = Field(default="", description="Image path relative to the source root.")
    original_shape: tuple[int, int] = Field(description="Native image shape (rows, cols).")
    pixel_spacing: tuple[float, float] | None = Field(
        default=None, description="Row and column spacing in mm, when the source records it."
    )
    photometric_interpretation: str | None = None
    bits_stored: int | None = Field(default=None, ge=1, le=32)
    masses: list[MassRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Import remarks (defects fixed).")
    dicom: DicomRef | None = Field(
        default=None,
        description="Identifiers of the source DICOM image (schema 1.1; left out when unknown).",
    )

    @model_serializer(mode="wrap")
    def _leave_out_unknown_dicom(self, handler: SerializerFunctionWrapHandler) -> dict:
        # a record without DICOM identifiers serialises exactly as in schema 1.0
        data = handler(self)
        if isinstance(data, dict) and data.get("dicom", 0) is None:
            del data["dicom"]
        return data

    @field_validator("case_id")
    @classmethod
    def _case_id_safe(cls, value: str) -> str:
        if not CASE_ID_PATTERN.match(value):
            raise ValueError(
                f"case_id {value!r} may hold only letters, digits, '_', '.', '-' "
                "(start with a letter or digit, at most 200 characters); "
                "use mammo_common.schema.safe_case_id() to make one"
            )
        return value

    @field_validator("original_shape")
    @classmethod
    def _shape_positive(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) <= 0:
            raise ValueError(f"original_shape {value} must be positive")
        return value

    @model_validator(mode="after")
    def _mass_ids_unique(self) -> CaseRecord:
        ids = [m.mass_id for m in self.masses]
        if len(ids) != len(set(ids)):
            raise ValueError(f"masses have duplicate mass_id values {ids}")
        return self

    @property
    def is_malignant(self) -> bool | None:
        """True/False from the pathology, None when unknown."""
        if self.pathology == "unknown":
            return None
        return self.pathology == "MALIGNANT"
