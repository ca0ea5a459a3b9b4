"""DICOM reading: LUTs, MONOCHROME1, spacing, and refusal of damaged or absurd files."""

from __future__ import annotations

import numpy as np
import pytest
from formats import phantom_image, write_dicom

from mammo_common.errors import InputFileError
from mammo_common.ingest import dicom
from mammo_common.ingest.dicom import read_dicom


def test_monochrome2_kept_as_is(tmp_path):
    img = phantom_image()
    image, info = read_dicom(write_dicom(tmp_path / "a.dcm", img))
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, img)
    assert info.photometric_interpretation == "MONOCHROME2"
    assert info.bits_stored == 16
    assert info.pixel_spacing == (0.1, 0.1)


def test_monochrome1_inverted(tmp_path):
    img = phantom_image()
    image, info = read_dicom(write_dicom(tmp_path / "a.dcm", img, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(image, 65535 - img)
    assert info.photometric_interpretation == "MONOCHROME1"
    assert any("MONOCHROME1" in n for n in info.notes)


def test_monochrome1_12_bit_inverted_within_its_range(tmp_path):
    img = (phantom_image() // 16).astype(np.uint16)
    path = write_dicom(tmp_path / "a.dcm", img, photometric="MONOCHROME1", bits_stored=12)
    image, info = read_dicom(path)
    np.testing.assert_array_equal(image, 4095 - img)
    assert info.bits_stored == 12


def test_voi_window_applied(tmp_path):
    img = np.linspace(1000, 3000, 64 * 48).reshape(64, 48).astype(np.uint16)
    image, info = read_dicom(write_dicom(tmp_path / "a.dcm", img, window=(1500, 1000)))
    assert any("VOI" in n for n in info.notes)
    flat = image.ravel()
    assert np.all(np.diff(flat.astype(np.int64)) >= 0)  # order preserved
    assert flat[0] == 0 and flat[-1] == 65535  # values outside the window are clipped
    assert (flat == 65535).sum() > 100


def test_modality_lut_applied(tmp_path):
    img = phantom_image()
    image, info = read_dicom(write_dicom(tmp_path / "a.dcm", img, rescale=(-1000, 1)))
    assert any("modality" in n for n in info.notes)
    np.testing.assert_array_equal(image, img - 1000)


def test_imager_pixel_spacing_used(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", phantom_image(), spacing=(0.07, 0.05),
                       imager_spacing=True)
    assert read_dicom(path)[1].pixel_spacing == (0.07, 0.05)


def test_truncated_file_refused(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", phantom_image(), truncate_to=500)
    with pytest.raises(InputFileError, match="truncated") as err:
        read_dicom(path)
    assert "a.dcm" in err.value.message and "Fix:" in err.value.message


def test_non_dicom_refused(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(InputFileError, match="not a DICOM") as err:
        read_dicom(path)
    assert "fake.dcm" in err.value.message


def test_empty_file_refused(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_dicom(path)


def test_absurd_dimensions_refused_before_decoding(tmp_path, monkeypatch):
    path = write_dicom(tmp_path / "huge.dcm", phantom_image(), header_shape=(65_535, 65_535))

    def boom(*args, **kwargs):
        raise AssertionError("pixel data decoded before the size check")

    monkeypatch.setattr(dicom, "_decode", boom)
    with pytest.raises(InputFileError, match="limit") as err:
        read_dicom(path)
    assert "huge.dcm" in err.value.message
    with pytest.raises(InputFileError, match="limit"):
        read_dicom(write_dicom(tmp_path / "b.dcm", phantom_image()), max_pixels=1000)


def test_blank_image_refused(tmp_path):
    path = write_dicom(tmp_path / "black.dcm", np.zeros((64, 48), np.uint16))
    with pytest.raises(InputFileError, match="blank") as err:
        read_dicom(path)
    assert "black.dcm" in err.value.message


def test_mask_read_without_luts(tmp_path):
    mask = np.zeros((64, 48), np.uint8)
    mask[10:20, 10:20] = 255
    image, _ = read_dicom(write_dicom(tmp_path / "m.dcm", mask), apply_luts=False)
    assert set(np.unique(image)) == {0, 255}
