#!/usr/bin/env python3
"""The project's two commands, needing only Python 3.11+ and pip.

    python3 dev.py pipeline   # set up .venv, synthesise data, run the whole DVC pipeline
    python3 dev.py test       # run every test session (nox, one environment per package)

Extra arguments after ``test`` go to nox (e.g. ``python3 dev.py test -s massseg``); after
``pipeline`` they go to ``dvc repro`` (e.g. ``python3 dev.py pipeline --force``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".venv-tools"
VENV = ROOT / ".venv"
PACKAGES = ("common", "breastseg", "massseg", "massclass")


def _bin(env: Path, name: str) -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    return env / sub / (name + (".exe" if os.name == "nt" else ""))


def _run(cmd: list[str | Path], **kwargs) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], **kwargs)


def _ensure_venv(path: Path, packages: list[str], fingerprint: str = "") -> None:
    """Install ``packages`` into the venv at ``path`` unless the same list (and fingerprint:
    the packages' pyproject.toml digest, so a new dependency reaches an existing .venv) is
    already installed there."""
    marker = path / ".mammo-installed"
    wanted = "\n".join([*packages, fingerprint])
    if marker.exists() and marker.read_text() == wanted:
        return
    if not _bin(path, "python").exists():
        venv.EnvBuilder(with_pip=True).create(path)
    py = _bin(path, "python")
    if _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "uv>=0.4"]):
        sys.exit("could not install uv into " + str(path))
    env = {**os.environ, "UV_COMPILE_BYTECODE": "1", "VIRTUAL_ENV": str(path)}
    if _run([_bin(path, "uv"), "pip", "install", "--python", py, *packages], env=env):
        sys.exit("could not install " + " ".join(packages))
    marker.write_text(wanted)


def _env(path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": str(_bin(path, "python").parent) + os.pathsep + os.environ.get("PATH", ""),
        "UV_COMPILE_BYTECODE": "1",
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }


def test(args: list[str]) -> int:
    """Run the nox sessions (all by default)."""
    _ensure_venv(TOOLS, ["nox>=2024.4", "uv>=0.4"])
    return _run([_bin(TOOLS, "nox"), "-f", ROOT / "noxfile.py", *args], cwd=ROOT, env=_env(TOOLS))


def pipeline(args: list[str]) -> int:
    """Install the four packages and DVC into .venv, then reproduce the pipeline."""
    pkgs: list[str] = []
    for name in PACKAGES:
        pkgs += ["-e", f"{ROOT / 'packages' / name}" + ("[cpu]" if name != "common" else "")]
    digest = hashlib.sha256(b"".join(
        (ROOT / "packages" / name / "pyproject.toml").read_bytes() for name in PACKAGES
    )).hexdigest()
    _ensure_venv(VENV, [*pkgs, "dvc>=3.50"], fingerprint=f"pyproject sha256 {digest}")
    env = _env(VENV)
    py = _bin(VENV, "python")
    return _run([py, "-m", "mammo_common.pipeline", *args], cwd=ROOT, env=env)


def main(argv: list[str]) -> int:
    """Dispatch ``pipeline`` or ``test``."""
    if not argv or argv[0] not in {"pipeline", "test"}:
        print(__doc__)
        return 2
    return {"pipeline": pipeline, "test": test}[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
