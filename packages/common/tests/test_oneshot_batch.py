"""Batch ``mammo run`` core without Keras: input discovery, the cascade object, failures per
image, exit conditions, Ctrl-C, the model cache (fake stage plugins, PNG/DICOM files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mammo_common.errors import ConfigError, InputFileError, MammoError
from mammo_common.model_cache import ModelCache, active_cache, memoized
from mammo_common.oneshot import MassFinding, OneShotCase, load_cascade
from mammo_common.oneshot_batch import BatchRunConfig, find_inputs, run_batch
from mammo_common.postprocess import components
from mammo_common.schema.model_card import ModelCard, model_id


def _folder(root: Path, stage: str) -> Path:
    folder = root / stage / "net" / "fold_1"
    folder.mkdir(parents=True)
    card = ModelCard(stage=stage, package=f"mammo-{stage}", package_version="0.1.0",
                     architecture="net", model_id=model_id(stage, "net", 1),
                     input_shape=(16, 16, 1), metrics={"score": 0.5})
    (folder / "model_card.json").write_text(card.to_json())
    (folder / "model.keras").write_bytes(b"")
    return folder


class _Seg:
    """A mass-segmentation plugin: one 6x7 mass; it builds its "model" through the cache."""

    name, order, requires, selection_metric = "massseg", 2, ("work_image",), "score"

    def __init__(self, fail_on: int | None = None, fail_with: type[Exception] = ValueError):
        self.calls = 0
        self.builds = 0
        self.fail_on, self.fail_with = fail_on, fail_with

    def _build(self) -> object:
        self.builds += 1
        return object()

    def run(self, case: OneShotCase, model_dirs) -> None:
        memoized(("fake_model", str(model_dirs[0])), self._build)
        self.calls += 1
        if self.fail_on is not None and int(case.image[0, 0]) == self.fail_on:
            raise self.fail_with("this image breaks the network")
        pred = np.zeros(case.work_image.shape, np.uint8)
        pred[4:10, 5:12] = 1
        case.mass_pred = pred
        case.mass_probs = pred.astype(np.float32) * 0.9
        case.masses = [MassFinding(c.label, c.bbox, c.area, c) for c in components(pred)]


class _Cls:
    name, order, requires, selection_metric = "massclass", 3, ("mass_pred",), "score"

    def run(self, case: OneShotCase, model_dirs) -> None:
        case.threshold = 0.5
        for m in case.masses:
            m.probability, m.label = 0.75, "malignant"


def _png(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.tile(np.arange(24, dtype=np.uint8) * 9, (32, 1))
    image[0, 0] = value  # tells the fake plugin which image it sees (x257 once read)
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    _folder(root, "massseg")
    _folder(root, "massclass")
    return root


def test_model_cache_memoizes_only_while_active():
    made: list[int] = []

    def make() -> int:
        made.append(1)
        return len(made)

    assert memoized(("k",), make) == 1 and memoized(("k",), make) == 2  # no cache: no memo
    cache = ModelCache()
    with cache.active():
        assert active_cache() is cache
        assert memoized(("k", 1), make) == 3 and memoized(("k", 1), make) == 3
        assert memoized(("other",), make) == 4
        with pytest.raises(RuntimeError):
            memoized(("bad",), lambda: (_ for _ in ()).throw(RuntimeError("no")))
    assert active_cache() is None
    assert (cache.builds, cache.hits, len(cache)) == (2, 1, 2)
    assert cache.builds_by_kind == {"k": 1, "other": 1}
    cache.clear()
    assert len(cache) == 0


def test_cascade_chooses_folders_once_and_reuses_what_plugins_build(models: Path):
    seg = _Seg()
    with load_cascade(models, plugins=[_Cls(), seg], work_size=(32, 32)) as cascade:
        assert cascade.stage_names == ["massseg", "massclass"]
        assert any("breastseg is not installed" in n for n in cascade.notes)
        for _ in range(3):
            case = cascade.run(np.zeros((32, 24), np.uint16))
            assert case.stages_run == ["massseg", "massclass"]
            assert case.notes[: len(cascade.notes)] == cascade.notes
            assert case.diagnosis == {"label": "malignant", "probability": 0.75}
        assert seg.calls == 3 and seg.builds == 1
        assert cascade.cache.builds == 1
    assert len(cascade.cache) == 0  # closed


def test_find_inputs_folders_files_globs(tmp_path: Path):
    a = _png(tmp_path / "in" / "x" / "a.png", 1)
    _png(tmp_path / "in" / ".hidden.png", 2)
    (tmp_path / "in" / "notes.txt").write_text("x")
    b = _png(tmp_path / "other" / "b.png", 3)
    files, skipped, roots = find_inputs([
        str(tmp_path / "in"), str(a), f"{tmp_path}/oth*/*.png", str(tmp_path / "nope.dcm"),
    ])
    assert [f.path for f in files] == [a, b]  # a once; the hidden file not at all
    assert [f.shown for f in files] == [f"{tmp_path}/in/x/a.png", str(b)]
    assert {f.kind for f in files} == {"image"}
    reasons = {s.path: s.reason for s in skipped}
    assert "not a mammogram file" in reasons[f"{tmp_path}/in/notes.txt"]
    assert reasons[str(tmp_path / "nope.dcm")] == "no such file or folder"
    assert len(roots) == 2


def test_run_batch_goes_past_a_failing_image(models: Path, tmp_path: Path):
    for k in (1, 2, 3):
        _png(tmp_path / "in" / f"img{k}.png", k)
    out = tmp_path / "out"
    seen = []
    result = run_batch(
        BatchRunConfig(inputs=[str(tmp_path / "in")], models=models, out_dir=out,
                       work_size=(32, 32), progress=False, seg=True),
        plugins=[_Seg(fail_on=2 * 257), _Cls()], on_image=seen.append,
    )
    assert [i.case_id for i in result.images] == ["img1", "img3"] == [i.case_id for i in seen]
    (failed,) = result.failed
    assert failed.path.endswith("img2.png")
    assert "the cascade failed on this image (ValueError: this image breaks" in failed.reason
    assert result.n_seg == 0 and any("are not DICOM" in n for n in result.notes)
    document = json.loads((out / "results.json").read_text())
    rows = document["rows"]
    assert [r["row_type"] for r in rows] == ["case", "mass", "case", "mass"]
    assert rows[1]["bbox_y0"] == 4 and rows[1]["area_px"] == 42
    assert rows[1]["mass_probability_mean"] == pytest.approx(0.9)
    assert rows[0]["label"] == "malignant" and rows[0]["malignancy_probability"] == 0.75
    assert document["metadata"]["n_failed"] == 1
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["img1.png", "img3.png"]


def test_run_batch_exit_conditions(models: Path, tmp_path: Path):
    _png(tmp_path / "in" / "img1.png", 1)
    config = BatchRunConfig(inputs=[str(tmp_path / "in")], models=models,
                            out_dir=tmp_path / "out", work_size=(32, 32), progress=False)
    with pytest.raises(MammoError, match="none went through the cascade") as info:
        run_batch(config, plugins=[_Seg(fail_on=257), _Cls()])
    assert info.value.exit_code == 1
    with pytest.raises(InputFileError, match="no mammogram file was found") as info:
        run_batch(config.model_copy(update={"inputs": [str(tmp_path / "void")]}),
                  plugins=[_Seg()])
    assert info.value.exit_code == 2
    with pytest.raises(ConfigError, match="no pipeline stage"):
        run_batch(config, plugins=[])
    assert not (tmp_path / "out").exists()


def test_keyboard_interrupt_keeps_finished_images(models: Path, tmp_path: Path):
    for k in (1, 2, 3):
        _png(tmp_path / "in" / f"img{k}.png", k)
    out = tmp_path / "out"
    result = run_batch(
        BatchRunConfig(inputs=[str(tmp_path / "in")], models=models, out_dir=out,
                       work_size=(32, 32), progress=False),
        plugins=[_Seg(fail_on=2 * 257, fail_with=KeyboardInterrupt), _Cls()],
    )
    assert result.interrupted and [i.case_id for i in result.images] == ["img1"]
    document = json.loads((out / "results.json").read_text())
    assert {r["case_id"] for r in document["rows"]} == {"img1"}
    assert document["metadata"]["interrupted"] is True
    assert [p.name for p in (out / "overlays").iterdir()] == ["img1.png"]


def test_laterality_reaches_the_stages(models: Path, tmp_path: Path):
    from mammo_common.oneshot import input_laterality

    _png(tmp_path / "in" / "P_00001_RIGHT_CC.png", 1)
    _png(tmp_path / "in" / "scan.png", 2)
    assert input_laterality(tmp_path / "in" / "P_00001_RIGHT_CC.png") == "R"
    assert input_laterality(tmp_path / "in" / "scan.png") is None
    seen: dict[str, str | None] = {}

    class _Side(_Cls):
        def run(self, case: OneShotCase, model_dirs) -> None:
            seen[Path(case.source).name] = case.laterality

    run_batch(BatchRunConfig(inputs=[str(tmp_path / "in")], models=models,
                             out_dir=tmp_path / "out", progress=False),
              plugins=[_Seg(), _Side()])
    assert seen == {"P_00001_RIGHT_CC.png": "R", "scan.png": None}
