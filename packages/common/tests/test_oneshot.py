"""``mammo run`` core: stage discovery, model choice, graceful degradation, overlay (no Keras)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mammo_common.errors import ConfigError, InputFileError
from mammo_common.oneshot import (
    MassFinding,
    OneShotCase,
    StagePlugin,
    find_model_folders,
    read_input_image,
    render_overlay,
    run_one,
)
from mammo_common.postprocess import components
from mammo_common.schema.model_card import ModelCard, model_id
from mammo_common.viz import COLORS


def _folder(root: Path, stage: str, arch: str, fold: int, metric: float | None) -> Path:
    folder = root / stage / arch / f"fold_{fold}"
    folder.mkdir(parents=True)
    card = ModelCard(
        stage=stage, package=f"mammo-{stage}", package_version="0.1.0", architecture=arch,
        model_id=model_id(stage, arch, fold), input_shape=(16, 16, 1),
        metrics={} if metric is None else {"score": metric},
    )
    (folder / "model_card.json").write_text(card.to_json())
    (folder / "model.keras").write_bytes(b"")
    return folder


def test_find_model_folders_prefers_best_mean_metric(tmp_path):
    _folder(tmp_path, "massseg", "aaa", 1, 0.5)
    _folder(tmp_path, "massseg", "bbb", 2, 0.8)
    _folder(tmp_path, "massseg", "bbb", 1, 0.6)
    _folder(tmp_path, "massseg", "ccc", 1, None)
    (tmp_path / "massseg" / "ddd" / "fold_1").mkdir(parents=True)  # incomplete: ignored
    got = find_model_folders(tmp_path, "massseg", "score")
    assert [p.parent.name + "/" + p.name for p in got] == ["bbb/fold_1", "bbb/fold_2"]
    assert find_model_folders(tmp_path, "breastseg", "score") == []
    # without the metric anywhere: alphabetical
    assert find_model_folders(tmp_path, "massseg", "nothing")[0].parent.name == "aaa"


class _Fake:
    """A stage plugin that records calls and fills the case like the real ones."""

    def __init__(self, name: str, order: int, requires: tuple[str, ...] = ()):
        self.name, self.order, self.requires = name, order, requires
        self.selection_metric = "score"
        self.calls: list[list[Path]] = []

    def run(self, case: OneShotCase, model_dirs) -> None:
        self.calls.append(list(model_dirs))
        if self.name == "massseg":
            pred = np.zeros(case.work_image.shape, np.uint8)
            pred[4:10, 5:12] = 1
            case.mass_pred = pred
            case.masses = [MassFinding(c.label, c.bbox, c.area, c) for c in components(pred)]
        if self.name == "massclass":
            case.threshold = 0.5
            for m in case.masses:
                m.probability, m.label = 0.8, "malignant"


def test_fake_plugins_satisfy_the_protocol():
    assert isinstance(_Fake("x", 1), StagePlugin)


def test_run_one_degrades_gracefully(tmp_path):
    image = np.zeros((32, 24), np.uint16)
    _folder(tmp_path, "massseg", "net", 1, 0.5)
    massseg, massclass = _Fake("massseg", 2), _Fake("massclass", 3, ("mass_pred",))
    case = run_one(image, tmp_path, plugins=[massclass, massseg])
    assert case.stages_run == ["massseg"]
    assert len(massseg.calls) == 1 and massclass.calls == []
    text = "\n".join(case.notes)
    assert "breastseg is not installed (pip install mammo-breastseg)" in text
    assert "no massclass model" in text
    assert "whole image" in text
    assert case.diagnosis == {"label": "masses_not_classified", "probability": None}
    assert case.masses[0].bbox == (4, 5, 10, 12)


def test_run_one_classifies_and_skips_stages_without_inputs(tmp_path):
    image = np.zeros((32, 24), np.uint16)
    _folder(tmp_path, "massclass", "net", 1, 0.5)
    massclass = _Fake("massclass", 3, ("mass_pred",))
    case = run_one(image, tmp_path, plugins=[massclass])
    assert case.stages_run == [] and massclass.calls == []
    assert any("needs mass_pred" in n for n in case.notes)
    assert case.diagnosis["label"] == "not_segmented"

    _folder(tmp_path, "massseg", "net", 1, 0.5)
    case = run_one(image, tmp_path, plugins=[massclass, _Fake("massseg", 2)])
    assert case.stages_run == ["massseg", "massclass"]
    assert case.diagnosis == {"label": "malignant", "probability": 0.8}
    summary = json.loads(json.dumps(case.summary()))
    assert summary["masses"][0]["bbox_native"] == [4, 5, 10, 12]


def test_run_one_refuses_bad_inputs(tmp_path):
    with pytest.raises(InputFileError, match="not a folder"):
        run_one(np.zeros((4, 4)), tmp_path / "nope", plugins=[_Fake("massseg", 2)])
    with pytest.raises(ConfigError, match="no pipeline stage is installed"):
        run_one(np.zeros((4, 4)), tmp_path, plugins=[])
    with pytest.raises(InputFileError, match="not 2-D"):
        run_one(np.zeros((2, 4, 4)), tmp_path, plugins=[_Fake("massseg", 2)])


def test_native_bbox_and_overlay(tmp_path):
    from mammo_common.transforms import make_transform

    image = (np.arange(80 * 60, dtype=np.uint32).reshape(80, 60) * 13 % 65535).astype(np.uint16)
    case = OneShotCase(image=image)
    case.transform = make_transform(image.shape, (10, 0, 70, 60), (30, 30))
    case.work_image = np.zeros((30, 30), np.uint16)
    case.breast_mask = np.zeros(image.shape, np.uint8)
    case.breast_mask[10:70, :] = 1
    pred = np.zeros((30, 30), np.uint8)
    pred[5:10, 5:10] = 1
    comp = components(pred)[0]
    case.masses = [MassFinding(1, comp.bbox, comp.area, comp, 0.9, "malignant")]
    case.stages_run = ["breastseg", "massseg", "massclass"]
    assert case.native_bbox((5, 5, 10, 10)) == (20, 10, 30, 20)
    out = render_overlay(case, tmp_path / "o.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.mode in ("RGB", "RGBA")
        rgb = np.asarray(img)[..., :3].astype(np.int32)
    # the 80x60 image enlarged to 400 px on its longer side, title and legend around it
    assert 400 <= rgb.shape[0] <= 560 and 300 <= rgb.shape[1] <= 420
    assert out.stat().st_size < 400_000

    def near(color: tuple[int, int, int]) -> np.ndarray:
        return np.abs(rgb - np.asarray(color)).sum(axis=-1) <= 60

    assert near(COLORS["malignant"]).sum() > 20  # the malignant mass's contour
    assert near(COLORS["breast"]).sum() > 100  # the breast outline
    assert not near(COLORS["pred"]).any()  # no benign / unclassified mass: no orange
    case.masses[0].label, case.masses[0].probability = "benign", 0.2
    rgb = np.asarray(Image.open(render_overlay(case, tmp_path / "b.png")))[..., :3]
    rgb = rgb.astype(np.int32)
    assert near(COLORS["pred"]).sum() > 20 and not near(COLORS["malignant"]).any()
    with pytest.raises(InputFileError, match="PNG"):
        render_overlay(case, tmp_path / "o.jpg")


def test_read_input_image_png_and_missing(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(arr).save(tmp_path / "a.png")
    got = read_input_image(tmp_path / "a.png")
    assert got.dtype == np.uint16 and got[0, 1] == 257
    with pytest.raises(InputFileError):
        read_input_image(tmp_path / "missing.dcm")
