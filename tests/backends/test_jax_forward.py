"""Every network builds and runs a forward pass under Keras's JAX backend (tiny sizes).

The networks run in one fresh process with ``KERAS_BACKEND=jax`` (the backend is chosen when
Keras is first imported), so this works whatever backend the test process uses. Skipped when
JAX is not installed; ``nox -s jax`` installs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax  # noqa: F401  (the jax session installs it; nothing else collects tests/backends)
import pytest

SCRIPT = Path(__file__).with_name("jax_forward_script.py")
SEG = ["unet5l", "unetpp_xception", "unet_xception", "unet_vgg16", "unet_resnet50", "resunet",
       "deeplabv3plus", "multiresunet", "attention_unet", "unetpp"]
NAMES = ([f"massseg:{n}" for n in SEG] + ["common:unet5l"]
         + ["massclass:tinycnn", "massclass:descriptors", "massclass:vgg16"])


@pytest.fixture(scope="module")
def results() -> dict:
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
               JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    done = subprocess.run([sys.executable, str(SCRIPT), *NAMES], env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("JSON:")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][5:])


def test_backend_is_jax(results):
    assert results["_backend"]["backend"] == "jax"


@pytest.mark.parametrize("name", NAMES)
def test_forward_pass(results, name):
    r = results[name]
    assert "error" not in r, r.get("trace", r.get("error"))
    assert r["finite"]
    assert 0.0 <= r["min"] <= r["max"] <= 1.0
    if name.startswith("massclass"):
        assert r["shape"] == [2, 1]
    else:
        assert r["shape"][0] == 2 and r["shape"][-1] == 1


@pytest.mark.parametrize("feature", ["export", "strategy"])
def test_tensorflow_only_features_refuse_clearly(results, feature):
    r = results[f"_{feature}"]
    assert r["error"] == "ConfigError", r
    assert "TensorFlow" in r["message"]
