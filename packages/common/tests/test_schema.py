"""Schema models: field rules, cross-field consistency, versioning, JSON Schema export."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from mammo_common.json_schema import json_schemas, render
from mammo_common.schema import (
    BreastMeta,
    CaseDiagnosis,
    CaseRecord,
    CaseTransform,
    DiagnosisMeta,
    MassRecord,
    Producer,
    is_supported,
    safe_case_id,
)

PRODUCER = Producer(package="p", version="1", command="c")
REPO = Path(__file__).resolve().parents[3]


def test_case_id_rules() -> None:
    with pytest.raises(pydantic.ValidationError, match="case_id"):
        CaseRecord(case_id="../evil", patient_id="p", original_shape=(4, 4))
    assert safe_case_id(" Mass-Training P_00001/LEFT ") == "Mass-Training_P_00001_LEFT"
    CaseRecord(case_id=safe_case_id("a b/c"), patient_id="p", original_shape=(4, 4))


def test_case_record_rejects_typos_and_bad_values() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        CaseRecord(case_id="a", patient_id="p", original_shape=(4, 4), pathalogy="BENIGN")
    with pytest.raises(pydantic.ValidationError):
        CaseRecord(case_id="a", patient_id="p", original_shape=(4, 4), view="LAT")
    with pytest.raises(pydantic.ValidationError, match="duplicate mass_id"):
        CaseRecord(case_id="a", patient_id="p", original_shape=(4, 4),
                   masses=[MassRecord(mass_id=1), MassRecord(mass_id=1)])


def test_transform_box_must_be_inside() -> None:
    with pytest.raises(pydantic.ValidationError, match="not inside"):
        CaseTransform(original_shape=(10, 10), crop_box=(0, 0, 11, 5), output_shape=(4, 4))
    tf = CaseTransform(original_shape=(10, 20), crop_box=(0, 10, 10, 20), output_shape=(5, 5))
    assert tf.scale_y == 0.5 and tf.scale_x == 0.5


def test_stacked_meta_checks_alignment() -> None:
    rec = CaseRecord(case_id="a", patient_id="p", original_shape=(10, 10))
    tf = CaseTransform(original_shape=(10, 10), crop_box=(0, 0, 10, 10), output_shape=(4, 4))
    with pytest.raises(pydantic.ValidationError, match="differ in length"):
        BreastMeta(producer=PRODUCER, image_size=(4, 4), cases=[rec], transforms=[tf, tf])
    with pytest.raises(pydantic.ValidationError, match="image_size"):
        BreastMeta(producer=PRODUCER, image_size=(8, 8), cases=[rec], transforms=[tf])
    with pytest.raises(pydantic.ValidationError, match="duplicate"):
        BreastMeta(producer=PRODUCER, image_size=(4, 4), cases=[rec, rec], transforms=[tf, tf])


def test_diagnosis_meta_alignment() -> None:
    rec = CaseRecord(case_id="a", patient_id="p", original_shape=(10, 10))
    with pytest.raises(pydantic.ValidationError, match="same case ids"):
        DiagnosisMeta(producer=PRODUCER, cases=[rec],
                      diagnoses=[CaseDiagnosis(case_id="b", label="benign", probability=0.1)])


def test_versions() -> None:
    assert is_supported("1.0") and is_supported("1.7")
    assert not is_supported("2.0") and not is_supported("x")


def test_producer_digest_is_stable() -> None:
    a = Producer(package="p", version="1", command="c", params={"b": 1, "a": [1, 2]})
    b = Producer(package="p", version="1", command="c", params={"a": [1, 2], "b": 1})
    assert a.params_digest == b.params_digest != PRODUCER.params_digest


def test_published_json_schemas_are_current() -> None:
    """docs/schema must match the code: regenerate with `mammo schema docs/schema`."""
    schemas = json_schemas()
    assert {"case_record", "store_mammograms", "store_breast", "store_masses"} <= set(schemas)
    folder = REPO / "docs" / "schema"
    if not folder.is_dir():
        pytest.skip("not running from a source checkout")
    for stem, schema in schemas.items():
        path = folder / f"{stem}.schema.json"
        assert path.is_file(), f"{path} missing: run `mammo schema docs/schema`"
        assert json.loads(path.read_text()) == json.loads(render(schema)), (
            f"{path} is stale: run `mammo schema docs/schema`"
        )
