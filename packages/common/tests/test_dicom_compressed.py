"""Compressed DICOM pixel data: every common transfer syntax decodes to the original pixels.

Files are made here by compressing mammogram-like images with pydicom's own encoders (RLE
Lossless, JPEG-LS Lossless, JPEG 2000 Lossless), with the JPEG Lossless encoder of
:mod:`mg_dicom` (no Python package encodes process 14) and with Pillow (JPEG baseline); pydicom's
bundled files made by other toolkits (GDCM, DCMTK, CharLS) check the same decoders against an
uncompressed original. Missing decoders and undecodable syntaxes give a message naming the file,
the syntax and the extra to install.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from mg_dicom import mammo_like, to_jpeg_lossless, write_mg
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG2MPML,
    UID,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from mammo_common.errors import InputFileError
from mammo_common.ingest import IngestConfig, run_ingest
from mammo_common.ingest.dicom import DECODER_FIX, check_decodable, read_dicom, read_header
from mammo_common.store import open_store

#: Encoders pydicom runs through a plugin: the module that plugin needs.
ENCODER_MODULES = {RLELossless: None, JPEGLSLossless: "jpeg_ls", JPEG2000Lossless: "openjpeg"}


def _require_encoder(uid: UID) -> None:
    """Import the plugin module the encoder needs: a hard dependency of the test install
    (``[dicom]`` brings pylibjpeg-openjpeg, ``[test]`` pyjpegls), so a missing one fails."""
    module = ENCODER_MODULES[uid]
    if module is not None:
        importlib.import_module(module)


def _syntax(path: Path) -> UID:
    return pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID


@pytest.mark.parametrize("bits", [16, 12])
@pytest.mark.parametrize("uid", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=str)
def test_lossless_syntaxes_decode_to_the_original_pixels(tmp_path, uid, bits):
    _require_encoder(uid)
    img = mammo_like((131, 77), bits=bits, seed=bits)
    path = write_mg(tmp_path / "c.dcm", img, bits_stored=bits, compress=uid)
    assert _syntax(path) == uid
    assert pydicom.dcmread(path).PixelData[:4] == b"\xfe\xff\x00\xe0"  # encapsulated frames
    image, info = read_dicom(path)
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, img)
    assert info.bits_stored == bits and info.shape == img.shape


@pytest.mark.parametrize("bits", [16, 12, 8])
def test_jpeg_lossless_process_14_decodes_to_the_original_pixels(tmp_path, bits):
    img = mammo_like((75, 52), bits=bits, seed=3)
    img[0, 0], img[-1, -1] = 0, (1 << bits) - 1  # the extreme differences
    if bits == 8:
        img = img.astype(np.uint8)  # BitsAllocated 8
    path = to_jpeg_lossless(tmp_path / "jl.dcm", img, bits)
    assert _syntax(path) == "1.2.840.10008.1.2.4.70"
    image, _ = read_dicom(path)
    np.testing.assert_array_equal(image, img)


def test_monochrome1_and_window_apply_after_decompression(tmp_path):
    img = mammo_like((64, 48), bits=12)
    plain = write_mg(tmp_path / "p.dcm", img, bits_stored=12, photometric="MONOCHROME1",
                     WindowCenter=2000, WindowWidth=3000)
    packed = write_mg(tmp_path / "r.dcm", img, bits_stored=12, photometric="MONOCHROME1",
                      WindowCenter=2000, WindowWidth=3000, compress=RLELossless)
    a, info_a = read_dicom(plain)
    b, info_b = read_dicom(packed)
    np.testing.assert_array_equal(a, b)
    assert info_a.notes == info_b.notes and any("MONOCHROME1" in n for n in info_b.notes)
    assert not np.array_equal(b, img)  # the window and the inversion did apply


def test_jpeg_baseline_decodes_like_pillow(tmp_path):
    img8 = (mammo_like((80, 64), bits=8, seed=5)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img8).save(buf, format="JPEG", quality=95)
    stream = buf.getvalue()
    path = write_mg(tmp_path / "b.dcm", img8, bits_stored=8)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(path, enforce_file_format=True)
    image, _ = read_dicom(path)
    reference = np.asarray(Image.open(io.BytesIO(stream)).convert("L"), dtype=np.int32)
    assert image.shape == img8.shape
    assert np.abs(image.astype(np.int32) - reference).max() <= 2  # IDCTs may differ by a level
    assert np.abs(image.astype(np.int32) - img8).mean() < 3  # lossy, but close


BUNDLED = ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"]


@pytest.mark.parametrize("name", BUNDLED)
def test_files_from_other_toolkits_match_their_uncompressed_original(name):
    from pydicom.data import get_testdata_file

    original, compressed = get_testdata_file("MR_small.dcm"), get_testdata_file(name)
    if original is None or compressed is None:
        pytest.skip("pydicom's bundled test files are not installed")
    assert _syntax(Path(compressed)).is_compressed
    np.testing.assert_array_equal(read_dicom(compressed)[0], read_dicom(original)[0])


def test_jpeg_extended_12_bit_decodes():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPGExtended.dcm")
    if path is None:
        pytest.skip("pydicom's bundled test files are not installed")
    assert _syntax(Path(path)) == "1.2.840.10008.1.2.4.51"
    image, info = read_dicom(path)
    assert image.shape == (1024, 256) and info.bits_stored == 12
    assert 0 <= image.min() < image.max() <= 4095


def test_undecodable_syntax_is_named(tmp_path):
    img = mammo_like((32, 24))
    path = write_mg(tmp_path / "video.dcm", img)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([img.tobytes()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputFileError) as err:
        read_dicom(path)
    msg = err.value.message
    assert str(path) in msg and "MPEG2 Main Profile / Main Level" in msg and MPEG2MPML in msg
    assert "no DICOM decoder supports" in msg and "Fix: convert" in msg


def test_damaged_compressed_stream_names_the_syntax(tmp_path):
    img = mammo_like((64, 48))
    path = write_mg(tmp_path / "c.dcm", img, compress=RLELossless)
    ds = pydicom.dcmread(path)
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 3]])
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputFileError) as err:
        read_dicom(path)
    msg = err.value.message
    assert str(path) in msg and "RLE Lossless" in msg and "mammo-common[dicom]" in msg


_WITHOUT_DECODERS = textwrap.dedent(
    """
    import sys
    for name in ("pylibjpeg", "libjpeg", "openjpeg", "rle", "jpeg_ls", "gdcm"):
        sys.modules[name] = None  # as if the dicom extra were not installed
    from mammo_common.errors import InputFileError
    from mammo_common.ingest.dicom import read_dicom
    try:
        read_dicom(sys.argv[1])
    except InputFileError as exc:
        print(exc.message)
    else:
        print("DECODED")
    """
)


def test_missing_decoder_names_file_syntax_and_extra(tmp_path):
    img = mammo_like((40, 30))
    path = write_mg(tmp_path / "ls.dcm", img, compress=JPEGLSLossless) if _has("jpeg_ls") else (
        to_jpeg_lossless(tmp_path / "ls.dcm", img, 16)
    )
    syntax = _syntax(path)
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_DECODERS, str(path)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip()
    assert out != "DECODED"
    assert str(path) in out and "TransferSyntaxUID" in out
    assert syntax.name in out and str(syntax) in out
    assert "no installed decoder reads it" in out
    assert "pip install 'mammo-common[dicom]'" in out and "python-gdcm" in out
    np.testing.assert_array_equal(read_dicom(path)[0], img)  # with the extra: decoded


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_check_decodable_accepts_what_is_installed(tmp_path):
    for uid in (RLELossless, JPEG2000Lossless):
        path = write_mg(tmp_path / f"{uid}.dcm", mammo_like((64, 64)), compress=uid)
        check_decodable(read_header(path, with_pixels=True), path)  # no error
    assert "mammo-common[dicom]" in DECODER_FIX


def test_compressed_mammograms_ingest_with_their_syntax_noted(tmp_path):
    src = tmp_path / "src"
    images = {}
    for i, uid in enumerate((RLELossless, JPEG2000Lossless)):
        images[f"c{i}"] = mammo_like((90, 60), bits=12, seed=i)
        write_mg(src / f"c{i}.dcm", images[f"c{i}"], bits_stored=12, compress=uid)
    images["jl"] = mammo_like((90, 60), bits=16, seed=9)
    to_jpeg_lossless(src / "jl.dcm", images["jl"], 16)
    result = run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False))
    assert result.format == "images" and result.n_cases == 3 and result.n_skipped == 0
    store = open_store(tmp_path / "m.zarr", "mammograms")
    for case_id, img in images.items():
        data = store.load(case_id)
        np.testing.assert_array_equal(data.image, img)
        syntax = _syntax(src / f"{case_id}.dcm")
        assert data.record.dicom is not None and data.record.dicom.transfer_syntax_uid == syntax
        assert f"pixel data decoded from {syntax.name}" in " ".join(data.record.notes)


def test_peak_memory_stays_a_small_multiple_of_one_image(tmp_path):
    """Decoding, a VOI window and the store write hold at most ~5 images' worth at once."""
    img = mammo_like((2048, 1536), bits=12)
    src = tmp_path / "src"
    write_mg(src / "a.dcm", img, bits_stored=12, compress=RLELossless, WindowCenter=2048,
             WindowWidth=4096)
    write_mg(src / "b.dcm", img[::-1].copy(), bits_stored=12, WindowCenter=2048,
             WindowWidth=4096)
    config = IngestConfig(source=src, out=tmp_path / "warm.zarr", progress=False)
    run_ingest(config)  # imports and caches first: they are not the images' memory
    tracemalloc.start()
    try:
        run_ingest(config.model_copy(update={"out": tmp_path / "m.zarr"}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * img.nbytes, f"peak {peak / img.nbytes:.1f} x the image"
    assert len(open_store(tmp_path / "m.zarr", "mammograms")) == 2
