"""The CPU allocator choice made on import (mammo_common.runtime)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mammo_common.runtime import CPU_ALLOCATOR_ENV, prefer_pooled_cpu_allocator

PROBE = """
import {first}
import tensorflow as tf
x = tf.random.uniform((256, 256))
_ = x @ x
try:
    info = tf.config.experimental.get_memory_info("CPU:0")
    print("pooled", info["peak"] > 0)
except ValueError:
    print("default")
"""


def _probe(first: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != CPU_ALLOCATOR_ENV}
    clean.update(env, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)],
        env=clean, capture_output=True, text=True, timeout=300, check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_prefer_pooled_allocator_respects_the_users_choice(monkeypatch):
    monkeypatch.delenv(CPU_ALLOCATOR_ENV, raising=False)
    assert prefer_pooled_cpu_allocator() is True
    assert os.environ[CPU_ALLOCATOR_ENV] == "true"
    monkeypatch.setenv(CPU_ALLOCATOR_ENV, "false")
    assert prefer_pooled_cpu_allocator() is False
    assert os.environ[CPU_ALLOCATOR_ENV] == "false"


@pytest.mark.keras
def test_importing_mammo_gives_tensorflow_the_pooled_cpu_allocator():
    # the pooled (BFC) allocator keeps statistics; TensorFlow's default one has none
    assert _probe("mammo_common") == "pooled True"
    assert _probe("os") == "default"  # without mammo: TensorFlow's default, so the probe can fail
    assert _probe("mammo_common", **{CPU_ALLOCATOR_ENV: "false"}) == "default"
