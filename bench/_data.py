"""Benchmark data and random-weight model folders, made once and cached under ``WORK_DIR``.

Stores come from the project's own commands (``mammo synth`` -> ``mammo ingest`` ->
``breastseg predict --method threshold``); larger breast stores are made by repeating the cases
of a small one under new case ids (:func:`replicate_breast_store`), which is what a store of
that many distinct cases costs to read and predict. Nothing under the repository is written.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import _common as C


def _run(cmd: list[str]) -> None:
    C.log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=C.WORK_DIR)


def _exe(name: str) -> str:
    return str(C.VENV_BIN / name)


def mammograms_store(patients: int, size: tuple[int, int], seed: int = 0) -> Path:
    """A ``mammograms`` store of ``patients`` synthetic patients at native ``size`` (cached)."""
    C.WORK_DIR.mkdir(parents=True, exist_ok=True)
    tag = f"p{patients}_{size[0]}x{size[1]}_s{seed}"
    out = C.WORK_DIR / f"mammograms_{tag}.zarr"
    if out.exists():
        return out
    raw = C.WORK_DIR / f"raw_{tag}"
    if not raw.exists():
        _run([_exe("mammo"), "synth", str(raw), "--cases", str(patients), "--seed", str(seed),
              "--size", f"{size[0]}x{size[1]}", "--overwrite"])
    _run([_exe("mammo"), "ingest", str(raw), str(out), "--overwrite"])
    return out


def breast_store(mammograms: Path, output_size: tuple[int, int]) -> Path:
    """``breastseg predict --method threshold`` of a mammograms store at ``output_size``."""
    out = mammograms.with_name(
        mammograms.stem.replace("mammograms", "breast") + f"_{output_size[0]}x{output_size[1]}.zarr"
    )
    if out.exists():
        return out
    _run([_exe("breastseg"), "predict", "--method", "threshold", "--data", str(mammograms),
          "--out", str(out), "--output-size", f"{output_size[0]}x{output_size[1]}",
          "--overwrite"])
    return out


def replicate_breast_store(base: Path, n_cases: int, out: Path | None = None) -> Path:
    """A ``breast`` store of ``n_cases`` cases cycling through ``base``'s (new case ids)."""
    import numpy as np

    from mammo_common.store import StackedStoreWriter, open_store

    out = out or base.with_name(base.stem + f"_n{n_cases}.zarr")
    if out.exists():
        return out
    store = open_store(base, "breast")
    n0 = len(store)
    names = ["images", "breast_masks"] + (["mass_masks"] if store.meta.has_mass_masks else [])
    arrays = {name: np.asarray(store.array(name)[:]) for name in names}
    cases, transforms = store.cases, store.transforms
    with StackedStoreWriter(
        out, kind="breast", n_cases=n_cases, image_size=store.image_size,
        producer=store.meta.producer, parents=[store.as_parent()],
        with_mass_masks=store.meta.has_mass_masks, meta_fields={"method": "threshold"},
        overwrite=True,
    ) as writer:
        for i in range(n_cases):
            k = i % n0
            rec = cases[k]
            rec = rec.model_copy(update={"case_id": f"{rec.case_id}_r{i // n0}",
                                         "patient_id": f"{rec.patient_id}_r{i // n0}"})
            writer.write_case(i, rec, transforms[k], **{n: a[k] for n, a in arrays.items()})
    return out


def save_random_model(stage: str, arch: str, model: Any, folder: Path,
                      *, normalization: str = "divide_by_max") -> Path:
    """Saves a random-weight model as a model folder the stage's ``predict`` accepts."""
    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.schema.model_card import ModelCard, model_id

    shape = tuple(int(d) for d in model.input_shape[1:])
    card = ModelCard(
        stage=stage, package=f"mammo-{stage}", package_version="0.1.0", architecture=arch,
        model_id=model_id(stage, arch, 1), task="classification" if stage == "massclass"
        else "segmentation", input_shape=shape, normalization=normalization,
        weights_origin="scratch", created_by="bench (random weights, untrained)",
        notes="benchmark only: random weights",
    )
    if folder.exists():
        shutil.rmtree(folder)
    save_model_folder(folder, model, card)
    return folder


def rss_of(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> dict[str, Any]:
    """Runs ``cmd`` as a child and returns its exit code, wall time and peak RSS (os.wait4)."""
    import os
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    return {"cmd": cmd, "rc": proc.returncode, "wall_s": wall,
            "peak_rss_mib": usage.ru_maxrss / 1024.0,
            "output_tail": out.decode(errors="replace")[-2000:]}


def masses_store_from_truth(breast: Path, out: Path | None = None) -> Path:
    """A ``masses`` store whose ``mass_pred`` is the ground truth (for ``massclass predict``).

    Random-weight segmenters give meaningless masks (no mass, or hundreds of specks); the
    classifier's cost depends on how many masses it is given, so it is given the true ones.
    """
    import numpy as np

    from mammo_common.schema import Producer
    from mammo_common.store import StackedStoreWriter, open_store

    out = out or breast.with_name(breast.stem.replace("breast", "masses") + ".zarr")
    if out.exists():
        return out
    store = open_store(breast, "breast")
    names = ["images", "breast_masks", "mass_masks"]
    producer = Producer(package="bench", version="0", command="masses_store_from_truth")
    with StackedStoreWriter(
        out, kind="masses", n_cases=len(store), image_size=store.image_size, producer=producer,
        parents=[store.as_parent()], with_mass_masks=True,
        meta_fields={"threshold": 0.5, "min_object_pixels": 30, "largest_component": False,
                     "tta": False},
        overwrite=True,
    ) as writer:
        cases, transforms = store.cases, store.transforms
        for i in range(len(store)):
            arrays = {n: np.asarray(store.array(n)[i]) for n in names}
            m = (arrays["mass_masks"] > 0).astype(np.uint8)
            writer.write_case(i, cases[i], transforms[i], **arrays,
                              mass_probs=m.astype(np.float16), mass_pred=m)
    return out
