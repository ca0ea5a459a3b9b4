"""Mask post-processing: thresholds, small objects, largest component, holes, components."""

from __future__ import annotations

import numpy as np
import pytest

from mammo_common.postprocess import (
    Component,
    binarize,
    components,
    fill_holes,
    label,
    largest_component,
    remove_small_objects,
)


@pytest.fixture
def mask() -> np.ndarray:
    m = np.zeros((40, 40), np.uint8)
    m[2:12, 2:12] = 1  # 100 px
    m[20:23, 20:23] = 1  # 9 px
    m[30:36, 5:35] = 1  # 180 px
    m[15, 38] = 1  # 1 px
    return m


def test_binarize_threshold_and_nan():
    p = np.array([[0.2, 0.5], [0.7, np.nan]])
    np.testing.assert_array_equal(binarize(p), [[False, True], [True, False]])
    np.testing.assert_array_equal(binarize(p, 0.6), [[False, False], [True, False]])


def test_remove_small_objects(mask):
    out = remove_small_objects(mask, 10)
    assert out.dtype == bool
    assert out.sum() == 280
    assert remove_small_objects(mask, 0).sum() == mask.sum()
    assert not remove_small_objects(np.zeros((5, 5)), 3).any()


def test_largest_component(mask):
    out = largest_component(mask)
    assert out.sum() == 180 and out[33, 20]
    assert not largest_component(np.zeros((4, 4))).any()


def test_connectivity_diagonal():
    m = np.eye(4, dtype=bool)
    assert label(m)[1] == 1
    assert label(m, connectivity=1)[1] == 4
    with pytest.raises(ValueError):
        label(m, connectivity=3)


def test_fill_holes():
    m = np.zeros((10, 10), bool)
    m[2:8, 2:8] = True
    m[4:6, 4:6] = False
    assert fill_holes(m).sum() == 36
    # background touching the border is not a hole
    m2 = np.zeros((10, 10), bool)
    m2[:, 3] = True
    assert fill_holes(m2).sum() == 10


def test_components(mask):
    comps = components(mask, min_pixels=5)
    assert [c.label for c in comps] == [1, 2, 3]
    assert [c.area for c in comps] == [100, 9, 180]
    first = comps[0]
    assert isinstance(first, Component)
    assert first.bbox == (2, 2, 12, 12)
    assert first.mask.shape == (10, 10) and first.mask.all()
    assert mask[first.slices].sum() == 100
    assert first.centroid == pytest.approx((6.5, 6.5))
    assert len(components(mask)) == 4
    assert components(np.zeros((3, 3))) == []


def test_component_mask_excludes_neighbours():
    m = np.zeros((10, 10), bool)
    m[0:5, 0:5] = True
    m[2, 7] = True  # inside the first bbox's rows but another object
    m[0:3, 6:9] = True
    comps = components(m)
    assert len(comps) == 2
    assert comps[1].area == 9 + 0 or comps[1].area == 9
    assert sum(c.area for c in comps) == m.sum()


def test_rejects_3d():
    with pytest.raises(ValueError):
        largest_component(np.zeros((2, 2, 2)))
