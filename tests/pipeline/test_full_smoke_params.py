"""The full-protocol smoke run's params.yaml validates with every stage's own config.

`python3 dev.py pipeline --full --smoke` writes it from params-full.yaml
(mammo_common.full_smoke.smoke_params); a key a stage does not know would fail the run at that
stage, after an hour, so it is checked here in a second. Runs in the `pipeline` nox session.
"""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from breastseg.config import PredictConfig as BreastPredict
from breastseg.config import TrainConfig as BreastTrain
from mammo_common.full_smoke import smoke_params
from massclass.config import MassClassParams
from massseg.config import MassSegParams

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def params() -> dict:
    return smoke_params(yaml.safe_load((REPO / "params-full.yaml").read_text()))


def test_every_section_validates(params: dict) -> None:
    paths = {"data": "d.zarr", "splits": "s.json", "out": "m"}
    breast = BreastTrain.model_validate({**params["breastseg"]["train"], **paths})
    assert (breast.epochs, breast.steps_per_epoch, breast.input_size) == (1, 1, (1024, 768))
    BreastPredict.model_validate({**params["breastseg"]["predict"], "data": "d.zarr", "model": "m",
                                  "out": "b.zarr"})
    mass = MassSegParams.model_validate(params["massseg"])
    assert (mass.train.epochs, mass.train.steps_per_epoch) == (1, 1)
    assert mass.train.input_size == (640, 640)
    cls = MassClassParams.model_validate(params["massclass"])
    assert [p.epochs for p in cls.train.phases] == [1, 1, 1]
    assert cls.train.roi.source == "truth" and cls.train.input_size == 224


@pytest.mark.parametrize("bad", [0, -2])
def test_steps_per_epoch_is_at_least_one(params: dict, bad: int) -> None:
    with pytest.raises(pydantic.ValidationError):
        MassSegParams.model_validate({"train": {"steps_per_epoch": bad}})
    with pytest.raises(pydantic.ValidationError):
        BreastTrain.model_validate({"steps_per_epoch": bad, "data": "d", "splits": "s",
                                    "out": "m"})
