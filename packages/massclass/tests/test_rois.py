"""ROIs from a masses store: components, crops, representations, labels, missed cases."""

from __future__ import annotations

import numpy as np
import pytest

from mammo_common.errors import StoreError
from mammo_common.postprocess import components
from mammo_common.schema import CaseRecord
from mammo_common.store import open_store
from massclass.config import RoiConfig
from massclass.rois import case_label, crop_box, crop_roi, extract_rois


def test_crop_box_is_square_with_margin() -> None:
    assert crop_box((10, 20, 30, 30), margin=0.5, min_side=1) == (0, 5, 40, 45)
    y0, x0, y1, x1 = crop_box((50, 50, 52, 53), margin=0.25, min_side=32)
    assert y1 - y0 == x1 - x0 == 32


def test_crop_roi_pads_outside_and_repeats_gray() -> None:
    image = np.zeros((40, 40), np.float32)
    mask = np.zeros((40, 40), bool)
    mask[0:6, 0:6] = True
    image[mask] = 1.0
    comp = components(mask)[0]
    roi = crop_roi(image, comp, size=16, margin=0.5, min_side=4)
    assert roi.shape == (16, 16, 3) and roi.dtype == np.float32
    assert np.array_equal(roi[..., 0], roi[..., 2])
    assert roi[0, 0, 0] == 0.0  # padding beyond the top-left corner
    both = crop_roi(image, comp, size=16, margin=0.5, min_side=4, representation="image+mask")
    assert set(np.unique(both[..., 2])) <= {0.0, 1.0} and both[..., 2].sum() > 0


def test_case_labels() -> None:
    def rec(p: str) -> CaseRecord:
        return CaseRecord(case_id="c1", patient_id="p1", pathology=p, original_shape=(4, 4))

    assert case_label(rec("MALIGNANT")) == 1.0
    assert case_label(rec("BENIGN")) == 0.0
    assert case_label(rec("BENIGN_WITHOUT_CALLBACK")) == 0.0
    assert case_label(rec("BENIGN_WITHOUT_CALLBACK"), "malignant") == 1.0
    assert np.isnan(case_label(rec("BENIGN_WITHOUT_CALLBACK"), "exclude"))
    assert np.isnan(case_label(rec("unknown")))


def test_extract_counts_missed_and_extra_masses(masses_data) -> None:
    store = open_store(masses_data["store"], "masses")
    rois = extract_rois(store, RoiConfig(), size=32)
    assert rois.missed == masses_data["missed"]
    assert set(rois.cases) == set(masses_data["case_ids"])
    # every non-missed case has a ROI; case005 has an extra false-positive object
    assert set(rois.case_ids) == set(masses_data["case_ids"]) - set(masses_data["missed"])
    assert rois.case_ids.count("case005") == 2
    fp = [o for c, o in zip(rois.case_ids, rois.overlaps_truth, strict=True) if c == "case005"]
    assert sorted(fp) == [False, True]
    assert rois.images.shape[1:] == (32, 32, 3)
    assert rois.images.min() >= 0.0 and rois.images.max() <= 1.0
    summary = rois.summary()
    assert summary["n_missed_cases"] == 2 and summary["n_missed_malignant"] == 1
    assert summary["n_rois"] == len(rois)


def test_truth_source_and_mask_channel(masses_data) -> None:
    store = open_store(masses_data["store"], "masses")
    cfg = RoiConfig(source="truth", representation="image+mask")
    rois = extract_rois(store, cfg, size=24, case_ids=masses_data["missed"])
    assert rois.missed == []  # the ground truth has the masses segmentation missed
    assert all(o is None for o in rois.overlaps_truth)
    assert np.all(rois.images[..., 2].reshape(len(rois), -1).max(axis=1) == 1.0)


def test_unknown_case_is_an_error(masses_data) -> None:
    store = open_store(masses_data["store"], "masses")
    with pytest.raises(StoreError, match="nope"):
        extract_rois(store, size=16, case_ids=["nope"])


def test_pred_matched_keeps_only_detections_of_true_masses(masses_data) -> None:
    store = open_store(masses_data["store"], "masses")
    rois = extract_rois(store, RoiConfig(source="pred_matched"), size=32)
    every = extract_rois(store, RoiConfig(), size=32)
    # the false-positive object of case005 is gone; the missed cases stay missed
    assert rois.case_ids.count("case005") == 1
    assert all(rois.overlaps_truth) and len(rois) == len(every) - 1
    assert rois.missed == masses_data["missed"]
