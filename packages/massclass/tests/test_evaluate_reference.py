"""The metrics file says what the predictions were scored against (no Keras, no training)."""

from __future__ import annotations

import json

from mammo_common.schema import CaseRecord, Producer
from mammo_common.schema.stores import CaseDiagnosis
from mammo_common.store import write_diagnosis_store
from massclass.config import EvaluateConfig
from massclass.evaluate import CLASS_REFERENCE, evaluate


def test_metrics_name_their_reference(tmp_path) -> None:
    truths = ["malignant", "benign", "malignant", "benign"]
    probs = [0.9, 0.2, 0.4, 0.6]
    cases = [
        CaseRecord(case_id=f"c{i}", patient_id=f"p{i}", original_shape=(8, 8))
        for i in range(len(truths))
    ]
    diagnoses = [
        CaseDiagnosis(case_id=f"c{i}", probability=p, truth=t,  # type: ignore[arg-type]
                      label="malignant" if p >= 0.5 else "benign")
        for i, (t, p) in enumerate(zip(truths, probs, strict=True))
    ]
    store = write_diagnosis_store(
        tmp_path / "diag.zarr", cases=cases, diagnoses=diagnoses,
        producer=Producer(package="tests", version="0", command="test"),
    )
    evaluate(EvaluateConfig(data=store, out=tmp_path / "m.json"))
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["reference"] == CLASS_REFERENCE
    assert "pathology" in metrics["reference"]
    assert metrics["case"]["accuracy"] == 0.5
