"""Small mammography DICOM files for the oneshot tests (uncompressed MG, For Presentation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mg(path: Path, pixels: np.ndarray, uid: str, spacing, patient_id: str = "P1") -> None:
    """Write ``pixels`` (uint16) as an MG image: laterality and view from the file name
    (``right``/``mlo`` in it, else L and CC), study/series UIDs derived from ``uid``."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid + ".1", uid + ".2"
    ds.Modality, ds.PatientID = "MG", patient_id
    ds.ImageLaterality = "R" if "right" in path.name else "L"
    ds.ViewPosition = "MLO" if "mlo" in path.name else "CC"
    ds.Rows, ds.Columns = pixels.shape
    if spacing is not None:
        ds.PixelSpacing = list(spacing)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
