"""``predict`` writes the ``breast`` store that the mass-segmentation stage reads.

The threshold producer (no network) and the trained U-Net both write it; the checks below are
those the next stage relies on: the store opens as kind ``breast`` with a deep check, arrays and
transforms agree, masks map back onto the original images, lineage names the input.
"""

from __future__ import annotations

import numpy as np
import pytest
from breastseg_phantoms import write_phantom_store

from breastseg.config import PredictConfig
from breastseg.predict import predict
from mammo_common.errors import MammoError
from mammo_common.metrics import dice
from mammo_common.store import BreastStore, open_store
from mammo_common.transforms import invert_transform

SIZE = (128, 128)


@pytest.fixture(scope="module")
def threshold_store(phantom_data, tmp_path_factory):
    store, _ = phantom_data
    out = tmp_path_factory.mktemp("breast") / "breast.zarr"
    result = predict(PredictConfig(method="threshold", data=store, out=out, output_size=SIZE))
    return out, result


def check_breast_contract(path, source_path, *, min_breast_dice=0.95):
    """What the next stage relies on; returns the opened store."""
    breast = open_store(path, "breast", deep=True)
    assert isinstance(breast, BreastStore)
    source = open_store(source_path, "mammograms")
    assert breast.case_ids == source.case_ids
    assert breast.image_size == SIZE
    assert breast.meta.parents[0].kind == "mammograms"
    assert breast.meta.parents[0].digest == source.digest
    assert breast.meta.producer.package == "mammo-breastseg"
    images, masks = breast.array("images"), breast.array("breast_masks")
    assert images.shape == masks.shape == (len(source), *SIZE)
    assert images.dtype == np.uint16 and masks.dtype == np.uint8
    assert breast.meta.has_mass_masks and breast.has("mass_masks")
    for i, (case_id, tf) in enumerate(zip(breast.case_ids, breast.transforms, strict=True)):
        case = source.load(case_id)
        assert tuple(tf.original_shape) == case.image.shape
        assert tuple(tf.output_shape) == SIZE
        back = invert_transform(masks[i], tf)
        assert dice(back, case.breast_mask) >= min_breast_dice, case_id
        mass_back = invert_transform(breast.array("mass_masks")[i], tf)
        assert dice(mass_back, case.mass_mask) >= 0.85, case_id
        # background blanked: (almost) nothing bright outside the breast mask
        outside = images[i][masks[i] == 0]
        assert (outside > 0.3 * 65535).mean() < 0.01
    return breast


def test_threshold_store_is_a_valid_next_stage_input(threshold_store, phantom_data):
    path, result = threshold_store
    store, _ = phantom_data
    breast = check_breast_contract(path, store)
    assert breast.meta.method == "threshold" == result.method
    assert breast.meta.producer.model_ids == []
    assert breast.meta.producer.params["output_size"] == list(SIZE)
    assert result.n_cases == len(breast) and result.empty_cases == []


def test_next_stage_can_batch_the_store(threshold_store):
    from mammo_common.keras.training.data import SegmentationDataset

    breast = open_store(threshold_store[0], "breast")
    ds = SegmentationDataset(
        breast.array("images"), breast.array("mass_masks"), batch_size=4, image_size=(64, 64)
    )
    x, y = ds[0]
    assert x.shape == (4, 64, 64, 1) and y.shape == (4, 64, 64, 1)
    assert x.min() >= 0 and x.max() <= 1 and set(np.unique(y)) <= {0.0, 1.0}


def test_unet_store(trained_model, phantom_data, tmp_path):
    store, _ = phantom_data
    out = tmp_path / "breast_unet.zarr"
    result = predict(
        PredictConfig(model=trained_model.folder, data=store, out=out, output_size=SIZE)
    )
    breast = check_breast_contract(out, store, min_breast_dice=0.9)
    assert result.method == "unet" == breast.meta.method
    assert breast.meta.producer.model_ids == ["breastseg/unet5l/fold_1"]
    n = trained_model.result.n_train + trained_model.result.n_valid
    assert breast.meta.producer.params["training_masks"] == {"store": n, "labeller": 0}


def test_store_without_mass_masks(tmp_path):
    src = write_phantom_store(tmp_path / "m.zarr", 2, with_mass_masks=False)
    predict(PredictConfig(method="threshold", data=src, out=tmp_path / "b.zarr", output_size=SIZE))
    breast = open_store(tmp_path / "b.zarr", "breast", deep=True)
    assert not breast.meta.has_mass_masks and not breast.has("mass_masks")


def test_existing_output_is_kept(threshold_store, phantom_data):
    path, _ = threshold_store
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(MammoError, match="already exists"):
        predict(PredictConfig(method="threshold", data=phantom_data[0], out=path))
    assert sorted(p.name for p in path.iterdir()) == before
