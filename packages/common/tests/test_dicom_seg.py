"""DICOM SEG output: frames equal the native masks, references match the source, bad input."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from mammo_common.dicom_seg import (
    BREAST_LABEL,
    MASS_PROBABILITY_LABEL,
    read_seg,
    write_seg,
)
from mammo_common.errors import InputFileError, MammoError

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
ROWS, COLS = 300, 200


def mg_dataset(path=None, *, rows=ROWS, cols=COLS, **attrs) -> FileDataset:
    """A synthetic 16-bit MONOCHROME2 digital mammogram (For Presentation)."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path or "mem.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.PatientID = "P0001"
    ds.PatientName = "Test^Patient"
    ds.StudyID = "S1"
    ds.ImageLaterality = "L"
    ds.ViewPosition = "CC"
    ds.PixelSpacing = [0.1, 0.1]
    ds.ImagerPixelSpacing = [0.1, 0.1]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    pixels = np.random.default_rng(0).integers(0, 65535, (rows, cols), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def write_mg(path, **attrs):
    ds = mg_dataset(path, **attrs)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def masks(rows=ROWS, cols=COLS):
    breast = np.zeros((rows, cols), bool)
    breast[10:290, 0:150] = True
    breast[100:200, 150:170] = True
    m1 = np.zeros_like(breast)
    m1[40:70, 30:62] = True
    m1[55, 45] = False  # a hole: frames must equal the mask pixel for pixel
    m2 = np.zeros_like(breast)
    yy, xx = np.mgrid[:rows, :cols]
    m2[(yy - 180) ** 2 + (xx - 90) ** 2 < 17**2] = True
    return breast, [m1, m2]


def pydicom_segments(path) -> dict[int, np.ndarray]:
    """Decode a SEG with pydicom alone: segment number -> frame (absent segments: no key)."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    out = {}
    for frame, item in zip(frames, ds.PerFrameFunctionalGroupsSequence, strict=True):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        out[number] = frame
    return out


@pytest.fixture
def source(tmp_path):
    return write_mg(tmp_path / "L_CC.dcm")


def test_binary_seg_frames_equal_masks_and_references_match(tmp_path, source):
    breast, (m1, m2) = masks()
    out = write_seg(source, breast, [m1, m2], out=tmp_path / "seg" / "L_CC.seg.dcm",
                    probabilities=[0.8731, None])
    assert out == tmp_path / "seg" / "L_CC.seg.dcm" and out.is_file()

    # highdicom, through the module's reader
    seg = read_seg(out)
    assert seg.segmentation_type == "BINARY"
    np.testing.assert_array_equal(seg.breast, breast)
    assert len(seg.masses) == 2
    np.testing.assert_array_equal(seg.masses[0], m1)
    np.testing.assert_array_equal(seg.masses[1], m2)
    assert seg.malignancy == [pytest.approx(0.8731, abs=1e-4), None]
    assert seg.mass_probability_map is None
    assert [s.label for s in seg.segments] == [BREAST_LABEL, "Mass 1", "Mass 2"]
    assert seg.segments[0].category == ("SCT", "91723000", "Anatomical Structure")
    assert seg.segments[0].property_type == ("SCT", "76752008", "Breast")
    for s in seg.segments[1:]:
        assert s.category == ("SCT", "49755003", "Morphologically Abnormal Structure")
        assert s.property_type == ("SCT", "4147007", "Mass")
    assert "malignancy probability 0.8731" in seg.segments[1].description
    assert "malignancy" not in seg.segments[2].description

    # highdicom directly
    hseg = hd.seg.segread(out)
    src = pydicom.dcmread(source)
    arr = hseg.get_pixels_by_source_instance([src.SOPInstanceUID])
    assert arr.shape == (1, ROWS, COLS, 3)
    np.testing.assert_array_equal(arr[0, ..., 0], breast)
    np.testing.assert_array_equal(arr[0, ..., 2], m2)

    # pydicom alone: frames, geometry and references
    frames = pydicom_segments(out)
    np.testing.assert_array_equal(frames[1], breast)
    np.testing.assert_array_equal(frames[2], m1)
    np.testing.assert_array_equal(frames[3], m2)
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == SEG_STORAGE and ds.Modality == "SEG"
    assert (ds.Rows, ds.Columns) == (src.Rows, src.Columns)
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.PatientID == src.PatientID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    (ref_series,) = ds.ReferencedSeriesSequence
    assert ref_series.SeriesInstanceUID == src.SeriesInstanceUID
    (ref,) = ref_series.ReferencedInstanceSequence
    assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == MG_FOR_PRESENTATION
    derivation = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    src_ref = derivation.SourceImageSequence[0]
    assert src_ref.ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert src_ref.SpatialLocationsPreserved == "YES"
    # Projection image: no plane position/orientation; no spacing-only Pixel Measures
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert "PlanePositionSequence" not in shared
    assert "PlaneOrientationSequence" not in shared
    assert "PixelMeasuresSequence" not in shared
    assert ds.Manufacturer == "mammo"
    assert ds.SegmentSequence[1].AnatomicRegionSequence[0].CodeValue == "76752008"
    modifier = ds.SegmentSequence[1].AnatomicRegionSequence[0].AnatomicRegionModifierSequence
    assert modifier[0].CodeMeaning == "Left"


def test_fractional_seg_round_trips_the_probability_map(tmp_path, source):
    breast, (m1, m2) = masks()
    rng = np.random.default_rng(1)
    prob = rng.random((ROWS, COLS)).astype(np.float32)
    prob[0, 0], prob[0, 1] = 0.0, 1.0
    out = write_seg(source, breast, [m1, m2], out=tmp_path / "f.dcm", fractional=True,
                    mass_probability_map=prob, probabilities=[0.1, 0.9])
    seg = read_seg(out)
    assert seg.segmentation_type == "FRACTIONAL"
    assert [s.label for s in seg.segments] == [BREAST_LABEL, "Mass 1", "Mass 2",
                                               MASS_PROBABILITY_LABEL]
    got = seg.mass_probability_map
    assert got.shape == (ROWS, COLS)
    assert np.abs(got - prob).max() <= 0.5 / 255 + 1e-6
    assert got[0, 0] == 0.0 and got[0, 1] == 1.0
    np.testing.assert_array_equal(seg.breast, breast)
    np.testing.assert_array_equal(seg.masses[0], m1)
    np.testing.assert_array_equal(seg.masses[1], m2)
    assert seg.malignancy == [pytest.approx(0.1), pytest.approx(0.9)]

    ds = pydicom.dcmread(out)
    assert ds.SegmentationType == "FRACTIONAL"
    assert ds.SegmentationFractionalType == "PROBABILITY"
    assert ds.MaximumFractionalValue == 255
    frames = pydicom_segments(out)
    np.testing.assert_array_equal(frames[1], breast.astype(np.uint8) * 255)
    np.testing.assert_array_equal(frames[4], np.round(prob * 255).astype(np.uint8))


def test_dataset_source_breast_only_and_caller_dataset_untouched(tmp_path):
    ds = mg_dataset(PatientName=None, StudyID=None, PixelSpacing=None,
                    FrameOfReferenceUID=generate_uid(), ImageLaterality="R")
    before = set(ds.dir())
    breast, _ = masks()
    out = write_seg(ds, breast, [], out=tmp_path / "b.dcm", series_number=7)
    assert set(ds.dir()) == before  # no Type 2 attribute added to the caller's dataset
    seg = read_seg(out)
    assert [s.label for s in seg.segments] == [BREAST_LABEL]
    assert seg.masses == [] and seg.malignancy == []
    np.testing.assert_array_equal(seg.breast, breast)
    assert seg.referenced_sop_instance_uid == ds.SOPInstanceUID
    assert seg.referenced_series_instance_uid == ds.SeriesInstanceUID
    assert seg.study_instance_uid == ds.StudyInstanceUID
    out_ds = pydicom.dcmread(out)
    assert out_ds.SeriesNumber == 7
    assert out_ds.PatientName == ""


def test_integer_masks_accepted_and_output_replaced_atomically(tmp_path, source):
    breast, (m1, _) = masks()
    out = tmp_path / "x.seg.dcm"
    first = write_seg(source, breast.astype(np.uint8), [m1.astype(np.int64)], out=out)
    uid1 = pydicom.dcmread(first).SOPInstanceUID
    write_seg(source, breast, [], out=out)
    assert pydicom.dcmread(out).SOPInstanceUID != uid1
    assert read_seg(out).masses == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["L_CC.dcm", "x.seg.dcm"]


# ----------------------------------------------------------------------------- bad input


def _expect(exc_type, field, *words):
    def check(err):
        msg = err.value.message
        assert isinstance(err.value, exc_type)
        assert err.value.field == field, msg
        assert "Fix:" in msg, msg
        for word in words:
            assert word in msg, msg
    return check


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"breast_mask": np.ones((300, 201), bool)}, "breast_mask", ("(300, 201)", "300 rows")),
        ({"mass_masks": "second wrong"}, "mass_masks[1]", ("(150, 100)",)),
        ({"breast_mask": np.zeros((ROWS, COLS), bool)}, "breast_mask", ("empty",)),
        ({"mass_masks": "second empty"}, "mass_masks[1]", ("empty",)),
        ({"breast_mask": np.full((ROWS, COLS), 0.7)}, "breast_mask", ("not a binary mask",)),
        ({"probabilities": [0.5]}, "probabilities", ("1 values for 2",)),
        ({"probabilities": [0.5, 1.5]}, "probabilities[1]", ("1.5",)),
        ({"mass_probability_map": np.zeros((ROWS, COLS))}, "mass_probability_map",
         ("BINARY", "fractional=True")),
        ({"fractional": True}, "mass_probability_map", ("missing",)),
        ({"fractional": True, "mass_probability_map": np.full((ROWS, COLS), 2.0)},
         "mass_probability_map", ("outside [0, 1]",)),
        ({"fractional": True, "mass_probability_map": np.zeros((ROWS, 5))},
         "mass_probability_map", ("(300, 5)",)),
    ],
)
def test_bad_masks_refused(tmp_path, source, kwargs, field, words):
    breast, (m1, m2) = masks()
    args = {"breast_mask": breast, "mass_masks": [m1, m2], **kwargs}
    if args["mass_masks"] == "second wrong":
        args["mass_masks"] = [m1, np.ones((150, 100), bool)]
    elif args["mass_masks"] == "second empty":
        args["mass_masks"] = [m1, np.zeros_like(m2)]
    out = tmp_path / "bad.seg.dcm"
    with pytest.raises(MammoError) as err:
        write_seg(source, args.pop("breast_mask"), args.pop("mass_masks"), out=out, **args)
    _expect(MammoError, field, "L_CC.dcm", *words)(err)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["L_CC.dcm"]  # no temporary left


@pytest.mark.parametrize(
    ("attrs", "field", "words"),
    [
        ({"Modality": "CT"}, "Modality", ("a CT image", "not a mammogram", "Modality MG")),
        ({"Modality": None}, "Modality", ("without a Modality",)),
        ({"SOPInstanceUID": None}, "SOPInstanceUID", ("missing",)),
        ({"StudyInstanceUID": None}, "StudyInstanceUID", ("missing",)),
        ({"NumberOfFrames": 3}, "NumberOfFrames", ("3 frames", "2D")),
    ],
)
def test_bad_sources_refused(tmp_path, attrs, field, words):
    path = write_mg(tmp_path / "src.dcm", **attrs)
    breast, masses = masks()
    with pytest.raises(InputFileError) as err:
        write_seg(path, breast, masses, out=tmp_path / "o.dcm")
    _expect(InputFileError, field, "src.dcm", *words)(err)
    # The same dataset in memory is refused the same way
    with pytest.raises(InputFileError) as err:
        write_seg(pydicom.dcmread(path), breast, masses, out=tmp_path / "o.dcm")
    assert err.value.field == field
    assert not (tmp_path / "o.dcm").exists()


def test_non_dicom_source_refused(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 300)
    breast, masses = masks()
    with pytest.raises(InputFileError, match="not a DICOM file") as err:
        write_seg(path, breast, masses, out=tmp_path / "o.dcm")
    assert "image.png" in err.value.message and "Fix:" in err.value.message
    with pytest.raises(InputFileError, match="is not a file"):
        write_seg(tmp_path / "missing.dcm", breast, masses, out=tmp_path / "o.dcm")
    with pytest.raises(MammoError) as err:
        write_seg(np.zeros((ROWS, COLS)), breast, masses, out=tmp_path / "o.dcm")
    assert err.value.field == "source"


def test_seg_never_overwrites_its_source(tmp_path, source):
    breast, masses = masks()
    size = source.stat().st_size
    with pytest.raises(MammoError) as err:
        write_seg(source, breast, masses, out=source)
    assert err.value.field == "out" and "Fix:" in err.value.message
    assert source.stat().st_size == size


def test_read_seg_refuses_a_non_seg(source):
    with pytest.raises(InputFileError) as err:
        read_seg(source)
    assert err.value.field == "Modality" and "not a DICOM Segmentation" in err.value.message


def test_seg_frames_follow_the_masks(tmp_path, source):
    """A mask changed by one pixel gives a different SEG frame (the checks above can fail)."""
    breast, (m1, _) = masks()
    a = read_seg(write_seg(source, breast, [m1], out=tmp_path / "a.dcm"))
    m1b = m1.copy()
    m1b[0, 0] = True
    b = read_seg(write_seg(source, breast, [m1b], out=tmp_path / "b.dcm"))
    assert not np.array_equal(a.masses[0], b.masses[0])
    assert int(b.masses[0].sum()) == int(m1.sum()) + 1


def test_fractional_seg_compressed_with_rle(tmp_path, source):
    breast, (m1, _) = masks()
    prob = np.zeros((ROWS, COLS), np.float32)
    prob[30:80, 20:70] = np.linspace(0.2, 1.0, 50, dtype=np.float32)[None, :]
    out = write_seg(source, breast, [m1], out=tmp_path / "rle.dcm", fractional=True,
                    mass_probability_map=prob, transfer_syntax_uid=RLELossless)
    ds = pydicom.dcmread(out)
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    seg = read_seg(out)
    assert np.abs(seg.mass_probability_map - prob).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_array_equal(seg.breast, breast)
    np.testing.assert_array_equal(seg.masses[0], m1)


def test_binary_seg_refuses_a_compressed_transfer_syntax(tmp_path, source):
    breast, masses = masks()
    with pytest.raises(MammoError) as err:
        write_seg(source, breast, masses, out=tmp_path / "o.dcm",
                  transfer_syntax_uid=RLELossless)
    _expect(MammoError, "transfer_syntax_uid", "BINARY", "1.2.840.10008.1.2.1")(err)
    assert not (tmp_path / "o.dcm").exists()


def test_deferred_pixel_data_is_not_read(tmp_path, source):
    """A dataset read with deferred pixel data keeps it on disk (large mammograms)."""
    ds = pydicom.dcmread(source, defer_size=1024)
    assert ds.get_item(0x7FE00010, keep_deferred=True).value is None
    breast, masses = masks()
    out = write_seg(ds, breast, masses, out=tmp_path / "d.dcm")
    assert ds.get_item(0x7FE00010, keep_deferred=True).value is None
    assert read_seg(out).referenced_sop_instance_uid == ds.SOPInstanceUID
