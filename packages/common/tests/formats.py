"""Write tiny files in each real dataset format, with the known defects, for the ingest tests.

Nothing here is downloaded: every helper writes what DATASETS.md describes (CBIS-DDSM CSVs and
DICOM tree, INbreast DICOM + OsiriX plist XML + semicolon CSV, BCDR outlines/image-info CSVs +
8-bit TIFFs, the reference PNG folders).
"""

from __future__ import annotations

import csv
import hashlib
import io
import plistlib
import uuid
from pathlib import Path

import numpy as np
import pydicom
import tifffile
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

SC_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes under ``root`` (inputs-unchanged check)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def phantom_image(shape: tuple[int, int] = (64, 48), seed: int = 0) -> np.ndarray:
    """A small uint16 test image: a bright half-disc 'breast' on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    breast = ((yy - shape[0] / 2) / (shape[0] * 0.4)) ** 2 + (xx / (shape[1] * 0.7)) ** 2 < 1
    img = np.where(breast, 30000, 2000) + rng.integers(0, 500, shape)
    return img.astype(np.uint16)


def disc(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    """A bool disc mask."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    header_shape: tuple[int, int] | None = None,
    patient_id: str = "P",
    laterality: str = "L",
    view: str = "CC",
    spacing: tuple[float, float] | None = (0.1, 0.1),
    imager_spacing: bool = False,
    bits_stored: int | None = None,
    truncate_to: int | None = None,
) -> Path:
    """Write a small uncompressed DICOM file (optionally lying about its size or truncated)."""
    uid = f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, path.name).int}"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SC_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = SC_SOP_CLASS
    ds.SOPInstanceUID = uid
    ds.Modality = "MG"
    ds.PatientID = patient_id
    ds.ImageLaterality = laterality
    ds.ViewPosition = view
    if spacing is not None:
        if imager_spacing:
            ds.ImagerPixelSpacing = list(spacing)
        else:
            ds.PixelSpacing = list(spacing)
    rows, cols = header_shape or pixels.shape
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = (bits_stored or bits) - 1
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleIntercept, ds.RescaleSlope = rescale
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    if truncate_to is not None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - truncate_to])
    return path


# --------------------------------------------------------------------------------- CBIS-DDSM

CBIS_MASS_COLUMNS = [
    "patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
    "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
    "image file path", "cropped image file path", "ROI mask file path",
]
CBIS_CALC_COLUMNS = [
    "patient_id", "breast density", "left or right breast", "image view", "abnormality id",
    "abnormality type", "calc type", "calc distribution", "assessment", "pathology", "subtlety",
    "image file path", "cropped image file path", "ROI mask file path",
]


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")


def write_cbis(root: Path, shape: tuple[int, int] = (64, 48)) -> dict[str, np.ndarray]:
    """A tiny CBIS-DDSM source with the known defects; returns the expected mass masks.

    * ``P_00001_LEFT_CC``: two masses; row 1 has a trailing newline in the ROI path and the
      full image is ``000000.dcm`` on disk while the CSV says ``1-1.dcm``; row 2 has the
      ROI-mask and cropped-image columns swapped.
    * ``P_00002_RIGHT_MLO``: one mass whose ROI mask is half the image size (resize needed).
    * ``P_00003_LEFT_CC``: the image path escapes the source with ``../`` (refused).
    * ``P_00004_RIGHT_CC``: the ROI mask file is missing (skipped).
    * ``P_00005_LEFT_MLO``: a calcification in the calc CSV (``breast density`` spelling).
    """
    cbis = root / "CBIS-DDSM"
    expected: dict[str, np.ndarray] = {}
    rows: list[dict[str, str]] = []

    def base_row(pid: str, side: str, view: str, abn: int, img: str, crop: str, roi: str):
        return {
            "patient_id": pid, "breast_density": "2", "left or right breast": side,
            "image view": view, "abnormality id": str(abn), "abnormality type": "mass",
            "mass shape": "IRREGULAR", "mass margins": "SPICULATED", "assessment": "4",
            "pathology": "MALIGNANT", "subtlety": "3", "image file path": img,
            "cropped image file path": crop, "ROI mask file path": roi,
        }

    # P_00001_LEFT_CC: two masses, 000000.dcm on disk, newline, swapped columns
    img = phantom_image(shape, 1)
    name = "Mass-Training_P_00001_LEFT_CC"
    write_dicom(cbis / name / "1.1" / "1.2" / "000000.dcm", img)
    m1, m2 = disc(shape, (20, 15), 5), disc(shape, (45, 25), 4)
    for k, m in ((1, m1), (2, m2)):
        abn = f"{name}_{k}/1.3/1.{k}"
        write_dicom(cbis / f"{abn}-crop" / "1-1.dcm", img[10:30, 5:25].copy())
        write_dicom(cbis / f"{abn}-mask" / "1-1.dcm", m.astype(np.uint8) * 255)
    rows.append(base_row("P_00001", "LEFT", "CC", 1, f"{name}/1.1/1.2/1-1.dcm",
                         f"{name}_1/1.3/1.1-crop/1-1.dcm", f"{name}_1/1.3/1.1-mask/1-1.dcm\n"))
    rows.append(base_row("P_00001", "LEFT", "CC", 2, f"{name}/1.1/1.2/1-1.dcm\n",
                         f"{name}_2/1.3/1.2-mask/1-1.dcm", f"{name}_2/1.3/1.2-crop/1-1.dcm"))
    rows[-1]["pathology"] = "BENIGN"
    expected["P_00001_LEFT_CC"] = (m1 | m2).astype(np.uint8)

    # P_00002_RIGHT_MLO: mask at half size
    img = phantom_image(shape, 2)
    name = "Mass-Test_P_00002_RIGHT_MLO"
    write_dicom(cbis / name / "2.1" / "2.2" / "1-1.dcm", img)
    half = (shape[0] // 2, shape[1] // 2)
    small = np.zeros(half, np.uint8)
    small[8:16, 6:14] = 255
    write_dicom(cbis / f"{name}_1" / "2.3" / "2.4" / "1-1.dcm", small)
    write_dicom(cbis / f"{name}_1" / "2.3" / "2.5" / "1-1.dcm", img[5:20, 5:20].copy())
    rows.append(base_row("P_00002", "RIGHT", "MLO", 1, f"{name}/2.1/2.2/1-1.dcm",
                         f"{name}_1/2.3/2.5/1-1.dcm", f"{name}_1/2.3/2.4/1-1.dcm"))
    big = np.zeros(shape, np.uint8)
    big[16:32, 12:28] = 1
    expected["P_00002_RIGHT_MLO"] = big

    # P_00003_LEFT_CC: escaping path
    rows.append(base_row("P_00003", "LEFT", "CC", 1, "../outside/1-1.dcm",
                         "x_1/a/b/1-1.dcm", "x_1/a/c/1-1.dcm"))
    # P_00004_RIGHT_CC: ROI mask missing
    name = "Mass-Training_P_00004_RIGHT_CC"
    write_dicom(cbis / name / "4.1" / "4.2" / "1-1.dcm", phantom_image(shape, 4))
    rows.append(base_row("P_00004", "RIGHT", "CC", 1, f"{name}/4.1/4.2/1-1.dcm",
                         f"{name}_1/4.3/4.4/1-1.dcm", f"{name}_1/4.3/4.5/1-1.dcm"))
    _write_csv(root / "mass_case_description_train_set.csv", CBIS_MASS_COLUMNS, rows)

    # P_00005_LEFT_MLO: calcification, other density spelling
    name = "Calc-Training_P_00005_LEFT_MLO"
    img = phantom_image(shape, 5)
    write_dicom(cbis / name / "5.1" / "5.2" / "1-1.dcm", img)
    calc = disc(shape, (30, 20), 3)
    write_dicom(cbis / f"{name}_1" / "5.3" / "5.4" / "1-1.dcm", calc.astype(np.uint8) * 255)
    write_dicom(cbis / f"{name}_1" / "5.3" / "5.5" / "1-1.dcm", img[20:40, 10:30].copy())
    calc_row = {
        "patient_id": "P_00005", "breast density": "3", "left or right breast": "LEFT",
        "image view": "MLO", "abnormality id": "1", "abnormality type": "calcification",
        "calc type": "PLEOMORPHIC", "calc distribution": "CLUSTERED", "assessment": "4",
        "pathology": "BENIGN_WITHOUT_CALLBACK", "subtlety": "2",
        "image file path": f"{name}/5.1/5.2/1-1.dcm\n",
        "cropped image file path": f"{name}_1/5.3/5.5/1-1.dcm",
        "ROI mask file path": f"{name}_1/5.3/5.4/1-1.dcm",
    }
    _write_csv(root / "calc_case_description_train_set.csv", CBIS_CALC_COLUMNS, [calc_row])
    expected["P_00005_LEFT_MLO"] = np.zeros(shape, np.uint8)
    return expected


# ---------------------------------------------------------------------------------- INbreast


def osirix_plist(rois: list[tuple[str, list[tuple[float, float]]]]) -> bytes:
    """An OsiriX ROI plist with ``Images[0].ROIs[]`` (Name, NumberOfPoints, Point_px)."""
    entries = [
        {
            "Name": name,
            "NumberOfPoints": len(points),
            "Point_px": [f"({x:.3f}, {y:.3f})" for x, y in points],
            "Point_mm": [f"({x * 0.07:.3f}, {y * 0.07:.3f}, 0)" for x, y in points],
            "Area": 0.0,
            "Center": "(0, 0, 0)",
            "IndexInImage": i,
        }
        for i, (name, points) in enumerate(rois)
    ]
    data = {"Images": [{"ImageHeight": 64, "ImageWidth": 48, "ImageIndex": 0,
                        "NumberOfROIs": len(entries), "ROIs": entries}]}
    return plistlib.dumps(data, fmt=plistlib.FMT_XML)


def write_inbreast(root: Path, shape: tuple[int, int] = (64, 48)) -> dict[str, np.ndarray]:
    """A tiny INbreast source; returns the expected mass masks by image id.

    * ``20586908`` (R CC, BI-RADS ``4a``): a square Mass polygon, one calcification point and a
      two-point calcification.
    * ``20586934`` (L ML, BI-RADS ``2``): no XML (no lesion).
    * ``bogus_name.dcm``: does not follow the naming scheme (skipped).
    """
    dcm_dir, xml_dir = root / "AllDICOMs", root / "AllXML"
    xml_dir.mkdir(parents=True)
    write_dicom(dcm_dir / "20586908_6c613a14b80a8591_MG_R_CC_ANON.dcm", phantom_image(shape, 7),
                laterality="R", view="CC", imager_spacing=True, spacing=(0.07, 0.07))
    write_dicom(dcm_dir / "20586934_6c613a14b80a8591_MG_L_ML_ANON.dcm", phantom_image(shape, 8),
                photometric="MONOCHROME1", laterality="L", view="MLO")
    write_dicom(dcm_dir / "bogus_name.dcm", phantom_image(shape, 9))
    square = [(10.0, 20.0), (20.0, 20.0), (20.0, 30.0), (10.0, 30.0)]
    (xml_dir / "20586908.xml").write_bytes(
        osirix_plist([("Mass", square), ("Calcification", [(30.0, 40.0)]),
                      ("Calcification", [(5.0, 5.0), (6.0, 6.0)])])
    )
    (root / "INbreast.csv").write_text(
        "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\n"
        "removed;removed;R;CC;201001;20586908;2;4a\n"
        "removed;removed;L;MLO;201001;20586934;1;2\n",
        encoding="utf-8",
    )
    mass = np.zeros(shape, np.uint8)
    mass[20:31, 10:21] = 1
    return {"20586908": mass, "20586934": np.zeros(shape, np.uint8)}


# -------------------------------------------------------------------------------------- BCDR

BCDR_OUTLINE_COLUMNS = [
    "patient_id", "study_id", "series", "lesion_id", "segmentation_id", "image_view",
    "image_filename", "lw_x_points", "lw_y_points", "mammography_type", "mammography_nodule",
    "mammography_calcification", "mammography_microcalcification",
    "mammography_axillary_adenopathy", "mammography_architectural_distortion",
    "mammography_stroma_distortion", "age", "density", "classification",
]
BCDR_INFO_COLUMNS = ["patient_id", "study_id", "series", "image_filename", "image_type_id",
                     "age", "density"]


def write_bcdr(root: Path, shape: tuple[int, int] = (64, 48)) -> dict[str, np.ndarray]:
    """A tiny BCDR-F01 subset; returns the expected mass masks by case id.

    * ``3_5_1_LCC``: a malignant mass outline (" Malign", leading spaces, density "N").
    * ``3_5_1_RCC``: listed only in the image-info CSV (no lesion).
    * ``4_6_1_LMLO``: listed in the image-info CSV but its TIFF is missing (skipped).
    """
    sub = root / "BCDR-F01_dataset"
    for name, seed in (("img_3_5_1_LCC.tif", 11), ("img_3_5_1_RCC.tif", 12)):
        path = sub / "patient_3" / "study_5" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, (phantom_image(shape, seed) // 257).astype(np.uint8))
    xs = " " + " ".join(str(v) for v in (10, 20, 20, 10))
    ys = " " + " ".join(str(v) for v in (30, 30, 40, 40))
    outline = {
        "patient_id": "3", "study_id": "5", "series": "1", "lesion_id": "7",
        "segmentation_id": "9", "image_view": "2",
        "image_filename": " patient_3/study_5/img_3_5_1_LCC.tif", "lw_x_points": xs,
        "lw_y_points": ys, "mammography_type": "1", "mammography_nodule": "1",
        "mammography_calcification": "0", "mammography_microcalcification": "0",
        "mammography_axillary_adenopathy": "0", "mammography_architectural_distortion": "0",
        "mammography_stroma_distortion": "0", "age": "55", "density": "N",
        "classification": " Malign",
    }
    _write_csv(sub / "bcdr_f01_outlines.csv", BCDR_OUTLINE_COLUMNS, [outline])
    info = [
        {"patient_id": "3", "study_id": "5", "series": "1",
         "image_filename": " patient_3/study_5/img_3_5_1_LCC.tif", "image_type_id": "2",
         "age": "55", "density": "N"},
        {"patient_id": "3", "study_id": "5", "series": "1",
         "image_filename": " patient_3/study_5/img_3_5_1_RCC.tif", "image_type_id": "1",
         "age": "55", "density": " "},
        {"patient_id": "4", "study_id": "6", "series": "1",
         "image_filename": " patient_4/study_6/img_4_6_1_LMLO.tif", "image_type_id": "4",
         "age": "61", "density": "2"},
    ]
    _write_csv(sub / "bcdr_f01_img.csv", BCDR_INFO_COLUMNS, info)
    mass = np.zeros(shape, np.uint8)
    mass[30:41, 10:21] = 1
    return {"3_5_1_LCC": mass, "3_5_1_RCC": np.zeros(shape, np.uint8)}


# ------------------------------------------------------------------------------------ folder


def write_folder(root: Path, shape: tuple[int, int] = (64, 48)) -> dict[str, np.ndarray]:
    """The reference layout: ``train01``/``valid01``/``test`` with ``mg``/``mask`` PNGs.

    ``valid01/mg/0.png`` repeats ``train01/mg/1.png`` (as the fold folders do) and
    ``test/mg/5.png`` has no mask. ``patients.csv`` maps two train images to one patient.
    """
    expected: dict[str, np.ndarray] = {}
    images = {
        ("train01", "0"): (phantom_image(shape, 21), disc(shape, (20, 20), 5)),
        ("train01", "1"): (phantom_image(shape, 22), np.zeros(shape, bool)),
        ("valid01", "0"): (phantom_image(shape, 22), np.zeros(shape, bool)),
        ("test", "0"): (phantom_image(shape, 23), disc(shape, (40, 20), 6)),
    }
    for (subset, stem), (img, mask) in images.items():
        for kind, arr in (("mg", (img // 257).astype(np.uint8)),
                          ("mask", mask.astype(np.uint8) * 255)):
            path = root / "mass_seg_08" / subset / kind / f"{stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(path)
        expected[f"mass_seg_08_{subset}_{stem}"] = mask.astype(np.uint8)
    del expected["mass_seg_08_valid01_0"]
    Image.fromarray((phantom_image(shape, 24) // 257).astype(np.uint8)).save(
        root / "mass_seg_08" / "test" / "mg" / "5.png"
    )
    (root / "patients.csv").write_text(
        "file,patient_id\nmass_seg_08/train01/mg/0.png,PX\ntrain01/1.png,PX\n", encoding="utf-8"
    )
    return expected
