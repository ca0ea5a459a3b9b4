"""Peak resident memory of the stage ``predict`` commands over 10 and over 200 cases.

Each command runs as a child process; its peak RSS is the ``ru_maxrss`` that ``os.wait4``
returns for that child alone. Inputs are breast stores of 10 and 200 cases (the cases of a
small synthetic store repeated under new ids, ``_data.replicate_breast_store``) and, for
``massclass predict``, masses stores whose predicted masks are the true masses (random-weight
segmenters give meaningless masks). Models are random-weight model folders.

Target: peak RSS over 200 cases within 1.2x of that over 10 (memory flat in the case count).

Usage::

    python bench/predict_memory.py --quick   # 256x256 stores, small networks (~1-2 min)
    python bench/predict_memory.py           # 640x640 stores, unet5l f=16, VGG16 224
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import _common as C
import _data as D


def make_models(work: Path, size: int, quick: bool) -> dict[str, Path]:
    """Random-weight model folders for massseg (unet5l) and massclass (VGG16)."""
    from massclass.models import build_model as build_cls
    from massseg.models import build_model as build_seg

    tag = "quick" if quick else "full"
    seg_dir = work / f"models_{tag}" / "massseg" / "unet5l" / "fold_1"
    cls_dir = work / f"models_{tag}" / "massclass" / "vgg16" / "fold_1"
    if not (seg_dir / "model.keras").exists():
        seg = build_seg("unet5l", input_shape=(size, size, 1), filters=8 if quick else 16)
        D.save_random_model("massseg", "unet5l", seg, seg_dir)
    if not (cls_dir / "model.keras").exists():
        side = 64 if quick else 224
        cls = build_cls("vgg16", input_shape=(side, side, 3), weights=None)
        D.save_random_model("massclass", "vgg16", cls, cls_dir)
    return {"massseg": seg_dir, "massclass": cls_dir}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", type=int, default=None, help="store side (quick 256, 640)")
    p.add_argument("--counts", default="10,200")
    p.add_argument("--commands", default="massseg,massclass")
    args = p.parse_args()
    size = args.size or (256 if args.quick else 640)
    counts = [int(c) for c in args.counts.split(",")]
    work = C.WORK_DIR
    mg = D.mammograms_store(4, (512, 384))
    base = D.breast_store(mg, (size, size))
    models = make_models(work, size, args.quick)

    runs: list[dict[str, Any]] = []
    for n in counts:
        breast = D.replicate_breast_store(base, n)
        masses_truth = D.masses_store_from_truth(breast)
        for command in args.commands.split(","):
            out = work / f"pm_out_{command}_{n}.zarr"
            if command == "massseg":
                cmd = [str(C.VENV_BIN / "massseg"), "predict", "--model", str(models["massseg"]),
                       "--data", str(breast), "--out", str(out), "--overwrite"]
            else:
                cmd = [str(C.VENV_BIN / "massclass"), "predict", "--model",
                       str(models["massclass"]), "--data", str(masses_truth), "--out", str(out),
                       "--overwrite"]
            C.log(f"{command} predict over {n} cases")
            r = D.rss_of(cmd, cwd=work)
            if r["rc"] != 0:
                print(r["output_tail"])
                raise SystemExit(f"{command} predict failed (rc {r['rc']})")
            r.update(command=command, n_cases=n)
            runs.append(r)

    rows, ratios = [], {}
    for command in args.commands.split(","):
        mine = {r["n_cases"]: r for r in runs if r["command"] == command}
        lo, hi = mine[min(counts)], mine[max(counts)]
        ratio = hi["peak_rss_mib"] / lo["peak_rss_mib"]
        ratios[command] = ratio
        for n in counts:
            r = mine[n]
            rows.append([f"{command} predict", n, r["peak_rss_mib"], r["wall_s"],
                         r["wall_s"] / n, ratio if n == max(counts) else ""])
    C.print_table(
        ["command", "cases", "peak RSS MiB", "wall s", "s/case", f"RSS ratio {max(counts)}/"
         f"{min(counts)}"], rows,
        title=f"Peak RSS of predict (child ru_maxrss), {size}x{size} stores",
    )
    path = C.write_results(
        "predict_memory_quick" if args.quick else "predict_memory",
        {"mode": "quick" if args.quick else "full", "size": size, "counts": counts,
         "models": {k: str(v) for k, v in models.items()}, "runs": runs,
         "rss_ratio": ratios, "target_ratio": 1.2},
    )
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
