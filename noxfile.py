"""Test sessions: one per package, each in its own environment with only what it needs.

Run all: ``python3 dev.py test`` (or ``nox`` with nox and uv installed). One session:
``nox -s massseg``. Environments are built with uv (fast); set ``UV_COMPILE_BYTECODE=1``.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHON = os.environ.get("MAMMO_NOX_PYTHON") or None  # None: the interpreter running nox
COMMON = "./packages/common"
TEST_ENV = {
    "KERAS_BACKEND": "tensorflow",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "MAMMO_NO_PROGRESS": "1",
    "PYTHONHASHSEED": "0",
    # TensorFlow's pooled CPU allocator (mammo_common.runtime); importing mammo sets it too
    "TF_CPU_ALLOCATOR_USE_BFC": "true",
}


LOCAL = ("mammo-common", "mammo-breastseg", "mammo-massseg", "mammo-massclass")


def _install(session: nox.Session, *args: str) -> None:
    """Install, always rebuilding our own packages (reused environments see the latest code)."""
    if getattr(session, "venv_backend", "") == "uv":
        flags = [f for name in LOCAL for f in ("--reinstall-package", name)]
    else:
        flags = []
    session.install(*flags, *args)


def _pytest(session: nox.Session, path: str, *extra: str) -> None:
    session.run(
        "pytest",
        path,
        "-q",
        "-p",
        "no:cacheprovider",
        "--strict-markers",  # a misspelt marker is an error, not a silent no-op
        "--durations=10",
        *extra,
        *session.posargs,
        env=TEST_ENV,
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff over every package."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "packages", "tests", "noxfile.py", "dev.py", "bench")


@nox.session(python=PYTHON)
def common(session: nox.Session) -> None:
    """mammo-common's core without TensorFlow or Keras: schema, stores, ingest, synth, metrics."""
    _install(session, f"{COMMON}[test]")
    session.run(
        "python",
        "-c",
        "import mammo_common.store, mammo_common.ingest, mammo_common.synth, sys; "
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, "
        "'the core imports keras'",
    )
    _pytest(session, "packages/common/tests", "-m", "not keras")


@nox.session(python=PYTHON)
def common_keras(session: nox.Session) -> None:
    """mammo-common's shared Keras toolkit (losses, augmentation, training harness, networks)."""
    _install(session, f"{COMMON}[cpu,test,onnx]")
    _pytest(session, "packages/common/tests", "-m", "keras")


def _stage(session: nox.Session, name: str) -> None:
    _install(session, f"{COMMON}[keras]", f"./packages/{name}[cpu,test]")
    _pytest(session, f"packages/{name}/tests")


@nox.session(python=PYTHON)
def breastseg(session: nox.Session) -> None:
    """Stage 1 alone with mammo-common."""
    _stage(session, "breastseg")


@nox.session(python=PYTHON)
def massseg(session: nox.Session) -> None:
    """Stage 2 alone with mammo-common."""
    _stage(session, "massseg")


@nox.session(python=PYTHON)
def massclass(session: nox.Session) -> None:
    """Stage 3 alone with mammo-common."""
    _stage(session, "massclass")


@nox.session(python=PYTHON)
def pipeline(session: nox.Session) -> None:
    """The real dvc.yaml end to end at CI size, with all four packages and DVC."""
    _install(
        session,
        f"{COMMON}[cpu,test]",
        "./packages/breastseg",
        "./packages/massseg",
        "./packages/massclass",
        "dvc>=3.50",
        "pyyaml",
    )
    _pytest(session, "tests/pipeline")


@nox.session(python=PYTHON)
def oneshot(session: nox.Session) -> None:
    """`mammo run` with the three stages installed (found through entry points)."""
    _install(
        session,
        f"{COMMON}[cpu,test]",
        "./packages/breastseg",
        "./packages/massseg",
        "./packages/massclass",
    )
    _pytest(session, "tests/oneshot")


@nox.session(python=PYTHON)
def jax(session: nox.Session) -> None:
    """Every network builds and runs a forward pass under Keras's JAX backend (no TensorFlow);
    BatchNorm folding, bfloat16 prediction and the fused BatchNorm class's fallback too."""
    _install(
        session,
        "jax[cpu]>=0.4.30",
        "keras>=3.8,<4",
        "pytest>=8",
        COMMON,
        "./packages/breastseg",
        "./packages/massseg",
        "./packages/massclass",
    )
    session.run(
        "pytest",
        "tests/backends",
        # prediction rewrites and the fused BatchNorm class must be portable too
        "packages/common/tests/test_keras_optimize.py",
        "packages/common/tests/test_keras_fused_batchnorm.py",
        "-q",
        "-p",
        "no:cacheprovider",
        "--strict-markers",
        "--durations=10",
        *session.posargs,
        env={**TEST_ENV, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
    )


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """Stage commands under bad input, SIGKILL, repetition (byte-identical outputs) and load."""
    _install(
        session,
        f"{COMMON}[cpu,test]",
        "./packages/breastseg",
        "./packages/massseg",
        "./packages/massclass",
        "pyyaml",
    )
    _pytest(session, "tests/reliability")


@nox.session(python=PYTHON, default=False)
def full_smoke(session: nox.Session) -> None:
    """The full protocol's smoke run (`python3 dev.py pipeline --full --smoke`): every network,
    fold and classifier of params-full.yaml at the reference's sizes, one epoch of one step
    each, on 32 synthetic 4000x3000 16-bit DICOM mammograms, `dvc repro` stage by stage to the
    report in `.smoke-full/` (the checkout's own pipeline untouched). Too slow for the default
    sessions (two CPU cores: `-- --smoke-jobs 2`, all five folds, two stages at once, took 52
    minutes, synthesis included; peak 9.2 GiB per stage): `python3 dev.py test -s full_smoke`,
    arguments after `--` go to the run. Measurements: `.smoke-full/full_smoke.json`
    (docs/benchmarks.md section 9)."""
    _install(
        session,
        f"{COMMON}[cpu]",
        "./packages/breastseg",
        "./packages/massseg",
        "./packages/massclass",
        "dvc>=3.50",
    )
    session.run(
        "python", "-m", "mammo_common.pipeline", "--full", "--smoke", *session.posargs,
        env=TEST_ENV,
    )
