"""Batch ``mammo run``: first-image latency, steady-state seconds per image and peak memory.

N synthetic 16-bit DICOM mammograms of 4000x3000 (``mammo_common.synth`` phantoms rendered at a
quarter of the size, upscaled bilinearly, a little noise so every file differs; MG, MONOCHROME2,
PixelSpacing, full UIDs; cached under ``MAMMO_BENCH_WORK``) go through the models of the demo
(``models/`` as ``dvc repro`` trains them; random-weight models of the same architectures and
sizes when ``models/`` is missing, said in the output). Each measurement runs in its own child
process, so each peak RSS (``ru_maxrss``) is its own:

``single``      ``mammo run ONE.dcm --models M --out x.png``: one process per mammogram, the
                way ``mammo run`` worked before batches (wall time of the command, start-up
                and model loading included).
``batch``       :func:`mammo_common.oneshot_batch.run_batch` over the folder (what ``mammo run
                DIR --models M --out-dir OUT`` calls): overlays and results.csv/json.
``batch_seg``   the same with ``--seg`` (a DICOM SEG per image).
``cascade``     the cascade's in-process per-image figure, the one ``bench/cascade_inference.py``
                measures (models loaded, image already decoded): ``Cascade.run(image)`` alone,
                with the batch's other phases timed beside it (DICOM read, overlay, table
                rows, SEG), one image at a time.

The ratio the issue asks for is measured inside the ``batch`` worker, image by image: each
image's whole time (read, cascade, overlay, table rows) over the time of its own
``Cascade.run`` (timed by wrapping it), median over images 2..N. Both halves are measured at the
same moment, so the load of a shared CPU cancels out; the ratio of the ``batch`` worker's
steady state to the ``cascade`` worker's is printed too, but on a shared machine the two
workers run at different moments.

First image = from the start of the child process (before importing mammo_common/TensorFlow)
to the end of the first image's outputs: imports, model loading and tracing included (for
``single``: the whole command). Steady
state = the median over images 2..N of each image's own time; the issue asks the batch's steady
state to be within 1.3x of the cascade's in-process figure.

Usage::

    python bench/batch_run.py --quick     # 8 images -> bench/results/batch_run_quick.json
    python bench/batch_run.py             # 50 images -> bench/results/batch_run.json
    python bench/batch_run.py --reference # reference sizes -> batch_run_reference.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_T0 = time.perf_counter()  # before anything heavy is imported (the --worker's start)

import _common as C  # noqa: E402

VARIANTS = ("single", "batch", "batch_seg", "cascade")
DEMO_SHAPES = {"breastseg": (256, 192, 1), "massseg": (256, 256, 1), "massclass": (96, 96, 3)}
TARGET_RATIO = 1.3


# --------------------------------------------------------------------------- data and models


def make_dicoms(n: int, size: tuple[int, int], seed: int = 0, distinct: int = 4) -> Path:
    """``n`` 16-bit MG DICOM files of ``size`` from ``distinct`` synthetic phantoms (cached)."""
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    from mammo_common.synth import render, sample_dataset
    from mammo_common.synth.cbis_layout import to_uint16
    from mammo_common.transforms import resize

    folder = C.WORK_DIR / f"batch_dicom_{size[0]}x{size[1]}_n{n}_s{seed}"
    if folder.is_dir() and len(list(folder.glob("*.dcm"))) == n:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    specs = sample_dataset(max(2, distinct), seed)[:distinct]
    small = (size[0] // 4, size[1] // 4)
    bases = []
    for spec in specs:
        C.log(f"render {spec.name} at {small[0]}x{small[1]}, upscale to {size[0]}x{size[1]}")
        phantom = render(spec, small, seed)
        big = resize(phantom.image.astype(np.float32), size, order=1)
        bases.append((spec, to_uint16(big), phantom.spacing_mm * small[0] / size[0]))
    rng = np.random.default_rng(seed)
    for i in range(n):
        spec, pixels, spacing = bases[i % len(bases)]
        noisy = np.clip(pixels.astype(np.int32) + rng.integers(-40, 41, pixels.shape), 0, 65535)
        uid = f"1.2.826.0.1.3680043.10.9997.{seed}.{i + 1}"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"img_{i:03d}_{spec.side}_{spec.view}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid + ".1", uid + ".2"
        ds.Modality, ds.PatientID = "MG", spec.patient_id
        ds.ImageLaterality = spec.side[0]
        ds.ViewPosition = spec.view
        ds.PixelSpacing = [f"{spacing:.6f}", f"{spacing:.6f}"]
        ds.Rows, ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.PixelData = noisy.astype(np.uint16).tobytes()
        ds.save_as(path, enforce_file_format=True)
    return folder


#: Random-weight stand-ins: stage -> (architecture, input shape, builder options, ROI settings).
DEMO_SPEC: dict[str, tuple[str, tuple[int, int, int], dict[str, Any]]] = {
    "breastseg": ("unet5l", DEMO_SHAPES["breastseg"], {"filters": 8}),
    "massseg": ("unet5l", DEMO_SHAPES["massseg"], {"filters": 16}),
    "massclass": ("descriptors", DEMO_SHAPES["massclass"], {"dense_units": (32, 16)}),
}
#: The reference's sizes (docs/ARCHITECTURES.md): 1024x768 breast U-Net, 640x640 U-Net++/Xception,
#: VGG16 at 224x224; the work size (breast crop the mass stages see) is 640x640.
REFERENCE_SPEC: dict[str, tuple[str, tuple[int, int, int], dict[str, Any]]] = {
    "breastseg": ("unet5l", (1024, 768, 1), {}),
    "massseg": ("unetpp_xception", (640, 640, 3), {}),
    "massclass": ("vgg16", (224, 224, 3), {}),
}
REFERENCE_WORK_SIZE = "640x640"


def random_models(root: Path, spec: dict[str, tuple[str, tuple[int, int, int], dict[str, Any]]]
                  ) -> Path:
    """Random-weight model folders of ``spec``'s architectures and sizes under ``root``."""
    if all(any((root / s).glob("*/fold_*/model.keras")) for s in spec):
        return root
    import keras

    from breastseg.models import build_model as build_breast
    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.schema.model_card import ModelCard, model_id
    from massclass.models import build_model as build_cls
    from massseg.models import build_model as build_mass

    keras.utils.set_random_seed(0)

    def card(stage: str, arch: str, shape: tuple[int, int, int], **extra: Any) -> ModelCard:
        return ModelCard(stage=stage, package=f"mammo-{stage}", package_version="0.1.0",
                         architecture=arch, model_id=model_id(stage, arch, 1),
                         input_shape=shape, **extra)

    arch, shape, options = spec["breastseg"]
    save_model_folder(root / f"breastseg/{arch}/fold_1",
                      build_breast(arch, input_shape=shape, **options), card("breastseg", arch,
                                                                              shape))
    arch, shape, options = spec["massseg"]
    save_model_folder(root / f"massseg/{arch}/fold_1", build_mass(arch, shape, **options),
                      card("massseg", arch, shape))
    arch, shape, options = spec["massclass"]
    representation = "image+mask" if arch == "descriptors" else "image"
    roi = {"source": "pred", "representation": representation, "margin": 0.5, "min_side": 8}
    save_model_folder(root / f"massclass/{arch}/fold_1",
                      build_cls(arch, shape, weights=None, **options),
                      card("massclass", arch, shape, task="classification",
                           normalization="divide_by_image_max", training={"roi": roi}))
    return root


def demo_models() -> tuple[Path, str]:
    """``models/`` when it holds all three stages, else random-weight models of their sizes."""
    models = C.REPO / "models"
    if all(any((models / s).glob("*/fold_*/model.keras")) for s in DEMO_SHAPES):
        return models, "demo models (models/, trained by dvc repro)"
    root = random_models(C.WORK_DIR / "batch_random_models", DEMO_SPEC)
    return root, "RANDOM-WEIGHT models of the demo's architectures and sizes (no models/)"


def reference_models() -> tuple[Path, str]:
    """Random-weight models at the reference's sizes (timing does not depend on the weights)."""
    root = random_models(C.WORK_DIR / "batch_reference_models", REFERENCE_SPEC)
    return root, ("RANDOM-WEIGHT models at the reference's sizes: unet5l 1024x768 -> "
                  "unetpp_xception 640x640 -> vgg16 224x224, work size 640x640")


# --------------------------------------------------------------------------- workers


def worker_batch(args: argparse.Namespace) -> dict[str, Any]:
    import mammo_common.oneshot as oneshot
    from mammo_common.oneshot_batch import BatchRunConfig, run_batch

    cascade_s: list[float] = []  # Cascade.run inside the batch, image by image
    real_run = oneshot.Cascade.run

    def timed_run(self: Any, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_run(self, *a, **k)
        finally:
            cascade_s.append(time.perf_counter() - t0)

    oneshot.Cascade.run = timed_run  # type: ignore[method-assign]
    done: list[float] = []
    size = tuple(int(v) for v in args.work_size.split("x"))
    result = run_batch(
        BatchRunConfig(inputs=[args.data], models=Path(args.models), out_dir=Path(args.out),
                       seg=args.variant == "batch_seg", work_size=size, overwrite=True,
                       progress=False),
        on_image=lambda image: done.append(time.perf_counter() - _T0),
    )
    seconds = [img.seconds for img in result.images]
    ratios = [t / c for t, c in zip(seconds[1:], cascade_s[1:], strict=True)]
    return {
        "cascade_in_batch_s": cascade_s,
        "cascade_in_batch_steady": C.summarize(cascade_s[1:]) if len(cascade_s) > 1 else None,
        "ratio_per_image": ratios,
        "ratio_median": C.summarize(ratios)["median_s"] if ratios else None,
        "n_images": len(result.images),
        "n_failed": len(result.failed),
        "n_masses": result.n_masses,
        "n_seg": result.n_seg,
        "model_loads": result.model_loads,
        "first_image_s": done[0],
        "per_image_s": seconds,
        "steady": C.summarize(seconds[1:]) if len(seconds) > 1 else None,
        "steady_throughput_s": (done[-1] - done[0]) / (len(done) - 1) if len(done) > 1 else None,
        "total_s": time.perf_counter() - _T0,
        "peak_rss_mib": C.peak_rss_mib(),
    }


def worker_cascade(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from mammo_common.dicom_seg import write_seg
    from mammo_common.oneshot import load_cascade, render_overlay
    from mammo_common.oneshot_batch import (
        BatchRunConfig,
        _Reader,
        _rows,
        _seg_masks,
        find_inputs,
    )

    size = tuple(int(v) for v in args.work_size.split("x"))
    files, _, roots = find_inputs([args.data])
    reader = _Reader(roots, BatchRunConfig(inputs=[args.data], models=Path(args.models),
                                           out_dir=Path(args.out), work_size=size))
    sw = C.Stopwatch()
    per_image: list[dict[str, float]] = []
    out = Path(tempfile.mkdtemp(dir=args.out))
    with load_cascade(args.models, work_size=size) as cascade:
        for item in files:
            before = {k: len(v) for k, v in sw.times.items()}
            with sw("read"):
                found = reader.read(item)
            with sw("cascade"):
                case = cascade.run(found.image, source=item.shown,
                                   laterality=found.record.laterality)
            with sw("overlay"):
                render_overlay(case, out / f"{found.record.case_id}.png")
            with sw("rows"):
                _rows(case, found.record)
            with sw("seg"):
                if case.breast_mask is not None:
                    write_seg(item.path, case.breast_mask > 0, _seg_masks(case),
                              out=out / f"{found.record.case_id}.seg.dcm",
                              probabilities=[m.probability for m in case.masses])
            per_image.append({k: v[-1] for k, v in sw.times.items()
                              if len(v) > before.get(k, 0)})
            if len(per_image) == 1:
                first_image_s = time.perf_counter() - _T0
            del found, case
    phases = ("read", "cascade", "overlay", "rows", "seg")
    return {
        "n_images": len(per_image),
        "first_image_s": first_image_s,
        "first_image": per_image[0],
        "phases": {ph: C.summarize([p[ph] for p in per_image[1:]]) for ph in phases},
        "cascade_per_image_s": [p["cascade"] for p in per_image],
        "peak_rss_mib": C.peak_rss_mib(),
    }


def run_single(
    files: list[Path], models: Path, work_size: str, out: Path, repeats: int = 1
) -> dict[str, Any]:
    """``mammo run ONE.dcm`` as its own process, ``repeats`` times on different files (wall
    time of each command and the children's peak RSS); ``first_image_s`` is the median."""
    exe = str(C.VENV_BIN / "mammo")
    walls, cmd = [], []
    for k, file in enumerate(files[: max(1, repeats)]):
        cmd = [exe, "run", str(file), "--models", str(models), "--out",
               str(out / f"one_{k}.png"), "--work-size", work_size]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "MAMMO_NO_PROGRESS": "1"})
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"mammo run failed (rc {proc.returncode})")
    # children of this process so far are these commands: ru_maxrss is their maximum
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"command": " ".join(cmd), "first_image_s": float(sorted(walls)[len(walls) // 2]),
            "runs_s": walls, "peak_rss_mib": rss, "n_images": 1}


# --------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="8 images, batch_run_quick.json")
    p.add_argument("--n", type=int, default=None, help="images (default 50; quick 8)")
    p.add_argument("--size", default="4000x3000", help="native ROWSxCOLS")
    p.add_argument("--work-size", default="512x512",
                   help="breast crop the mass stages see (the demo's breastseg output_size)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=",".join(VARIANTS))
    p.add_argument("--reference", action="store_true",
                   help="random-weight models at the reference's sizes, work size 640x640 "
                        "(results: batch_run_reference.json)")
    p.add_argument("--single-repeats", type=int, default=1,
                   help="cold `mammo run ONE.dcm` processes, each on another file (median)")
    p.add_argument("--name", default=None,
                   help="results name (default batch_run[_reference][_quick])")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="batch", help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    p.add_argument("--models", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        fn = worker_cascade if args.variant == "cascade" else worker_batch
        print("RESULT " + json.dumps(fn(args)), flush=True)
        return
    args.n = args.n or (8 if args.quick else 50)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}")
    size = tuple(int(v) for v in args.size.split("x"))
    data = make_dicoms(args.n, size)
    if args.reference:
        models, models_note = reference_models()
        args.work_size = REFERENCE_WORK_SIZE
    else:
        models, models_note = demo_models()
    C.log(f"{args.n} DICOM files of {size[0]}x{size[1]} in {data}; {models_note}")
    out_root = C.WORK_DIR / "batch_run_out"
    out_root.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    if "single" in variants:  # first, so RUSAGE_CHILDREN is this command's own peak
        C.log("single: mammo run ONE.dcm")
        results["single"] = run_single(sorted(data.glob("*.dcm")), models, args.work_size,
                                       out_root, args.single_repeats)
    for variant in [v for v in variants if v != "single"]:
        C.log(f"worker: {variant}")
        cmd = [sys.executable, __file__, "--worker", "--variant", variant, "--data", str(data),
               "--models", str(models), "--out", str(out_root / variant),
               "--work-size", args.work_size]
        (out_root / variant).mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
            raise SystemExit(f"worker {variant} failed (rc {proc.returncode})")
        results[variant] = json.loads(line[len("RESULT "):])

    def steady(v: str) -> float | None:
        r = results.get(v)
        if r is None:
            return None
        if v == "cascade":
            return r["phases"]["cascade"]["median_s"]
        return r["steady"]["median_s"] if r.get("steady") else None

    rows = []
    for v in variants:
        r = results[v]
        inside = r.get("cascade_in_batch_steady")
        rows.append([v, r["n_images"], r["first_image_s"], steady(v) if v != "single" else "",
                     inside["median_s"] if inside else "", r.get("ratio_median") or "",
                     r["peak_rss_mib"], r.get("model_loads", "")])
    C.print_table(["variant", "images", "first image s", "steady s/image (median)",
                   "its Cascade.run s (median)", "image / Cascade.run (median)",
                   "peak RSS MiB", "model folders loaded"], rows,
                  title=f"mammo run, {args.n} DICOM {size[0]}x{size[1]} 16-bit, work size "
                        f"{args.work_size}; {models_note}")
    ratio = results["batch"]["ratio_median"] if "batch" in results else None
    ratio_workers = None
    if steady("batch") and steady("cascade"):
        ratio_workers = steady("batch") / steady("cascade")
    if "cascade" in results:
        phases = results["cascade"]["phases"]
        C.print_table(["phase (cascade worker)", "median s", "min s", "max s"],
                      [[ph, s["median_s"], s["min_s"], s["max_s"]] for ph, s in phases.items()],
                      title="one image at a time, images 2..N")
    if ratio is not None:
        verdict = "within" if ratio <= TARGET_RATIO else "NOT within"
        print(f"\nbatch, per image: whole image / its Cascade.run, median over images 2..N = "
              f"{ratio:.2f} ({verdict} {TARGET_RATIO}x)")
    if ratio_workers is not None:
        print(f"batch steady state / the cascade worker's Cascade.run (separate processes, "
              f"different moments of a shared CPU) = {ratio_workers:.2f}")
    if "single" in results and steady("batch"):
        n = args.n
        batch_total = results["batch"]["first_image_s"] + (n - 1) * steady("batch")
        print(f"{n} images: one process each ~{n * results['single']['first_image_s']:.0f} s, "
              f"one batch ~{batch_total:.0f} s")
    name = args.name or ("batch_run_reference" if args.reference else "batch_run") + (
        "_quick" if args.quick else "")
    path = C.write_results(name, {
        "n_images": args.n, "native": list(size), "work_size": args.work_size,
        "models": str(models), "models_note": models_note, "data": str(data),
        "results": results, "steady_ratio_batch_vs_cascade": ratio,
        "steady_ratio_batch_vs_cascade_worker": ratio_workers,
        "target_ratio": TARGET_RATIO,
    })
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
