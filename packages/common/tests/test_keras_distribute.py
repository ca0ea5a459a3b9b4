"""``--strategy``: MirroredStrategy on two logical CPUs, MultiWorkerMirroredStrategy with two
local workers on loopback (each in fresh processes: devices are fixed when TF initialises)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mammo_common.errors import ConfigError
from mammo_common.keras.training.distribute import (
    get_strategy,
    global_batch_size,
    is_chief,
    scale_learning_rate,
    strategy_scope,
)

pytestmark = pytest.mark.keras  # Keras runs in the worker processes

WORKER = Path(__file__).with_name("distribute_worker.py")
TIMEOUT = 600


class MultiWorkerMirroredStrategy:  # a stand-in with the real class's name
    num_replicas_in_sync = 4


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("JSON:")]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1][5:])


def test_names_and_errors(monkeypatch):
    assert get_strategy("none") is None
    with strategy_scope("none") as strategy:
        assert strategy is None
    with pytest.raises(ConfigError, match="unknown distribution strategy"):
        get_strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        get_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        get_strategy("multi-worker")


def test_chief_rules_and_scaling(monkeypatch):
    fake = MultiWorkerMirroredStrategy()
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 0}}))
    assert is_chief(fake) and is_chief(None)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 1}}))
    assert not is_chief(fake)
    with_chief = {**cluster, "chief": ["127.0.0.1:3"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": with_chief,
                                                "task": {"type": "worker", "index": 0}}))
    assert not is_chief(fake)
    assert global_batch_size(2, fake) == 8 and global_batch_size(2) == 2
    assert scale_learning_rate(1e-3, fake) == 1e-3  # never scaled unless asked
    assert scale_learning_rate(1e-3, fake, "linear") == pytest.approx(4e-3)


def test_mirrored_on_two_logical_cpus(tmp_path):
    done = subprocess.run(
        [sys.executable, str(WORKER), "mirrored", str(tmp_path / "out")], env=_env(),
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = _result(done.stdout)
    assert result["strategy"] == "MirroredStrategy" and result["replicas"] == 2
    assert result["variable_type"] == "MirroredVariable"
    assert result["epochs_run"] == 1 and result["loss"] == result["loss"]  # finite, not NaN
    assert {"best.weights.h5", "history.csv"} <= set(result["written"])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_multiworker_two_local_workers(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), "multiworker", str(tmp_path / f"out{index}")],
            env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        ))
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(_result(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    chief, worker = outputs
    assert chief["strategy"] == "CollectiveAllReduceStrategy"  # = MultiWorkerMirroredStrategy
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["chief"] and not worker["chief"]
    assert {"best.weights.h5", "history.csv"} <= set(chief["written"])
    assert not (tmp_path / "out1").exists()  # only the chief writes
    assert chief["loss"] == pytest.approx(worker["loss"]) and chief["val_loss"] == pytest.approx(
        worker["val_loss"])
    # synchronous training: both end with the same trainable weights (BatchNorm moving
    # statistics are per replica; the chief saves its own)
    assert chief["trainable_sum"] == pytest.approx(worker["trainable_sum"], rel=1e-6)
