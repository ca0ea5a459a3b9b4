"""Classifier registry: the shared model tester (reference counts), other backbones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from mammo_common.testing import run_model_test
from massclass.models import (
    REFERENCE_COUNTS,
    MassClassifier,
    build_model,
    count_parameters,
    get_backbone,
    list_backbones,
    set_trainable,
)

# Keras runs through massclass.models (conftest marks only modules holding ``keras``).
pytestmark = pytest.mark.keras

#: MassClassifier arguments that are not in its config, on purpose: ``weights`` (a loaded model
#: gets its weights from its file) and ``trainable_base`` (massclass.train sets it per phase
#: with set_trainable; a loaded model starts frozen).
CONFIG_EXEMPT = ("weights", "trainable_base")


def head_parameters(features: int, dense_units: Sequence[int] = (256, 128)) -> int:
    """Parameters of the dense head on ``features`` pooled backbone features."""
    first, second = dense_units
    return features * first + first + first * second + second + second + 1


def tinycnn_counts(widths: Sequence[int], channels: int = 3) -> tuple[int, int]:
    """``(total, non_trainable)`` of a tinycnn classifier (frozen base, reference head)."""
    base, previous = 0, channels
    for width in widths:
        base += 3 * 3 * previous * width + 4 * width  # conv (no bias) + BatchNorm (4 per ch.)
        previous = width
    return base + head_parameters(previous), base


def run_classifier_test(name: str, shape: tuple[int, int, int], expected: tuple[int, int],
                        fresh_process, tmp_path, **kwargs):
    """The shared model tester on ``build_model(name, shape, **kwargs)``; its output in (0, 1)."""
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    result = run_model_test(
        lambda: build_model(name, shape, weights=None, **kwargs),
        x,
        expected_output_shape=(2, 1),
        expected_params=expected,
        tmp_path=tmp_path,
        fresh_process=fresh_process,
        config_exempt=CONFIG_EXEMPT,
    )
    assert isinstance(result.model, MassClassifier)
    (y,) = result.outputs
    assert np.all((y > 0) & (y < 1))
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_reference_backbone_passes_the_model_tester(
    name: str, keras_session, fresh_process, tmp_path
) -> None:
    model = run_classifier_test(name, (224, 224, 3), REFERENCE_COUNTS[name], fresh_process,
                                tmp_path).model
    counts = count_parameters(model)
    assert model.get_layer("malignancy").dtype_policy.compute_dtype == "float32"
    # top 25 % of the base trainable, then everything
    n = set_trainable(model, 0.25)
    assert 0 < n < len(model.base.layers)
    assert count_parameters(model)["trainable"] > counts["trainable"]
    set_trainable(model, "all")
    assert all(layer.trainable for layer in model.base.layers)


#: One keras.applications backbone per input preprocessing the reference three leave out.
OTHER_PREPROCESSING = {"densenet121": "torch", "efficientnetb0": "none"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OTHER_PREPROCESSING))
def test_other_preprocessing_passes_the_model_tester(
    name: str, keras_session, fresh_process, tmp_path
) -> None:
    """Expected counts: Keras's own backbone (frozen) plus the head on its features."""
    spec = get_backbone(name)
    assert spec.preprocess == OTHER_PREPROCESSING[name]
    shape = (64, 64, 3)
    base = spec.builder(shape, None)
    base_counts = count_parameters(base)
    assert base_counts["total"] > 0
    expected = (base_counts["total"] + head_parameters(base.output.shape[-1]),
                base_counts["total"])
    del base
    run_classifier_test(name, shape, expected, fresh_process, tmp_path)


def test_registry_lists_keras_applications_and_tiny() -> None:
    names = {b.name for b in list_backbones()}
    for expected in ("vgg16", "resnet50v2", "inceptionv3", "efficientnetb0", "densenet121",
                     "mobilenetv2", "tinycnn"):
        assert expected in names
    assert get_backbone("ResNet50-V2").name == "resnet50v2"
    assert get_backbone("densenet121").preprocess == "torch"
    assert get_backbone("vgg16").preprocess == "caffe"
    with pytest.raises(ValueError, match="valid names"):
        get_backbone("vgg17")


def test_head_structure_and_frozen_base(keras_session) -> None:
    model = build_model("mobilenetv2", (64, 64, 3), weights=None,
                        backbone_options={"alpha": 0.35})
    names = [layer.name for layer in model.layers]
    assert names[-6:] == ["backbone", "gap", "dense1", "dropout", "dense2", "malignancy"]
    assert model.get_layer("dense1").units == 256 and model.get_layer("dense2").units == 128
    assert model.get_layer("dropout").rate == 0.5
    assert not any(layer.trainable for layer in model.base.layers)
    head = 1280 * 256 + 256 + 256 * 128 + 128 + 129
    assert count_parameters(model)["trainable"] == head


@pytest.mark.parametrize("widths", [(16, 32, 64), (4, 8)])
def test_tinycnn_passes_the_model_tester(widths, keras_session, fresh_process, tmp_path) -> None:
    """The default tinycnn and a narrow one: exact counts, round trips, a fresh process."""
    run_classifier_test("tinycnn", (32, 32, 3), tinycnn_counts(widths), fresh_process, tmp_path,
                        backbone_options={"widths": list(widths)})


def test_bad_input_shape_is_explained(keras_session) -> None:
    with pytest.raises(ValueError, match="inceptionv3"):
        build_model("inceptionv3", (32, 32, 3), weights=None)
