"""What TensorFlow's CPU allocator costs: one demo breast-U-Net training run per setting.

Runs ``breastseg train`` (the demo's ``params.yaml`` settings, ``--epochs`` epochs, default 1) on
the pipeline's ``data/mammograms.zarr`` once with TensorFlow's default CPU allocator
(``TF_CPU_ALLOCATOR_USE_BFC=false``) and once with the pooled BFC allocator that importing
:mod:`mammo_common` asks for (``mammo_common.runtime``), one after the other (``--reps`` times
each, alternating), and reports per run the wall time, the child's user and system CPU time,
minor page faults and peak resident memory (``os.wait4``), and whether the two settings wrote
the same weights to the bit (every array of ``model.weights.h5`` inside ``model.keras``).

Needs the pipeline's outputs (``python3 dev.py pipeline``). About 2 x 2.5-4 minutes per rep on a
2-core machine with one epoch.

Usage::

    .venv/bin/python bench/cpu_allocator.py              # one rep, one epoch
    .venv/bin/python bench/cpu_allocator.py --reps 2 --epochs 2
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import _common as C

NAME = "cpu_allocator"
SETTINGS = {"default": "false", "pooled": "true"}


def weights_digest(model_dir: Path) -> str:
    """SHA-256 over every weight array (name, dtype, shape, bytes) of ``model.keras``."""
    import h5py

    digest = hashlib.sha256()
    with zipfile.ZipFile(model_dir / "model.keras") as zf:
        raw = zf.read("model.weights.h5")
    with h5py.File(io.BytesIO(raw), "r") as h5:
        names: list[str] = []
        h5.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for name in sorted(names):
            arr = h5[name][()]
            digest.update(f"{name}|{arr.dtype}|{arr.shape}|".encode())
            digest.update(arr.tobytes())
    return digest.hexdigest()


def run_once(setting: str, out: Path, epochs: int) -> dict[str, Any]:
    """One ``breastseg train`` subprocess under ``setting``; its times, faults and weights."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        str(C.VENV_BIN / "breastseg"), "train", "--params", str(C.REPO / "params.yaml"),
        "--data", str(C.REPO / "data/mammograms.zarr"),
        "--splits", str(C.REPO / "data/splits.json"),
        "--out", str(out), "--epochs", str(epochs),
    ]
    env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": SETTINGS[setting], "MAMMO_NO_PROGRESS": "1"}
    C.log(f"{setting}: {' '.join(cmd)}")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"breastseg train failed under {setting}:\n{stderr[-3000:]}")
    return {
        "setting": setting,
        "TF_CPU_ALLOCATOR_USE_BFC": SETTINGS[setting],
        "wall_s": round(wall, 1),
        "user_s": round(usage.ru_utime, 1),
        "system_s": round(usage.ru_stime, 1),
        "minor_faults": usage.ru_minflt,
        "max_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "weights_sha256": weights_digest(out),
    }


def main() -> None:
    """Parse arguments, run both settings, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args()
    if not (C.REPO / "data/mammograms.zarr").exists():
        raise SystemExit("data/mammograms.zarr is missing: run `python3 dev.py pipeline` first")
    work = C.WORK_DIR / NAME
    runs = []
    for rep in range(args.reps):
        for setting in SETTINGS:
            runs.append({"rep": rep, **run_once(setting, work / setting, args.epochs)})
    shutil.rmtree(work, ignore_errors=True)
    digests = {r["weights_sha256"] for r in runs}
    C.print_table(
        ["rep", "allocator", "wall s", "user s", "system s", "minor faults", "peak RSS MiB"],
        [[r["rep"], r["setting"], r["wall_s"], r["user_s"], r["system_s"], r["minor_faults"],
          r["max_rss_mib"]] for r in runs],
        title=f"breastseg train, {args.epochs} epoch(s), demo params.yaml",
    )
    print(f"same weights to the bit in every run: {len(digests) == 1}")
    path = C.write_results(NAME, {
        "workload": f"breastseg train --params params.yaml --epochs {args.epochs}",
        "runs": runs,
        "identical_weights": len(digests) == 1,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
