"""Cross-style robustness: train the demo cascade on one imaging style, test on the other.

``mammo synth --style film|digital`` renders the same patients, lesions and masks (same seed,
cases and size: the defaults unless ``--cases``/``--seed``/``--size``) as digitised screen-film
or as digital mammograms. For each style S of ``--styles`` (default ``film digital``):

1. a copy of the repository (``_demo_runner.make_copy``: ``git clone --local`` of HEAD, the
   working ``params.yaml``/``dvc.yaml``, no ``dvc.lock``) under
   ``$MAMMO_BENCH_WORK/cross_style/train_<S>`` gets ``data/raw`` = ``mammo synth --style S``;
2. ``dvc repro`` there trains the demo cascade on S and evaluates it on S's test split
   (``own``: ``metrics/*.json`` of that run);
3. for every other style T, the stage commands of ``dvc.yaml`` (``ingest``, ``split``,
   ``breastseg_predict``/``evaluate``, ``massseg_predict``/``evaluate``,
   ``massclass_predict``/``evaluate``, read from the copy's ``dvc.yaml`` with ``${...}``
   filled from its ``params.yaml``, so they stay what the pipeline runs) are re-run in that
   copy with S's trained models on T's data: ``data/raw`` -> T's raw folder, every other
   ``data/``, ``metrics/`` and ``plots/`` path -> ``xstyle/<T>/...``; ``models/`` and
   ``params.yaml`` unchanged. The test cases are the training run's ``data/splits.json``
   (the styles share patients and case ids, so T's own split is the same; the script checks
   and falls back to T's split, with a note, if not).

Reported: per direction S -> T and headline metric (breast Dice, mass Dice, case ROC AUC and
its CI, ...) the value on S's own test split, on T's, and the drop (own - cross, absolute and
relative). Per training run also the wall and CPU time of ``dvc repro``.

A training run takes about 10-15 minutes on 2 cores, a cross evaluation about a minute. The
script is resumable: the results file is rewritten after every step and a step already in it
is skipped (``--force`` re-does everything); the copies are kept until every step has
finished (an interrupted ``dvc repro`` continues from its last finished stage), then deleted
unless ``--keep``. ``--code copy`` (default) runs the copy's committed packages
(``PYTHONPATH``), ``--code venv`` the working tree's (what ``.venv`` has installed): the
``--style`` option of ``mammo synth`` must exist in the code chosen.

Usage::

    .venv/bin/python bench/cross_style.py --dry-run     # print the commands only
    .venv/bin/python bench/cross_style.py               # film <-> digital (~30 min)
    .venv/bin/python bench/cross_style.py --train-seed 1 --name cross_style_seed1
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _demo_runner as R

#: The dvc.yaml stages re-run on the other style's data, in pipeline order.
EVAL_STAGES = ("ingest", "split", "breastseg_predict", "breastseg_evaluate", "massseg_predict",
               "massseg_evaluate", "massclass_predict", "massclass_evaluate")
TRAIN_SEED_KEYS = ("breastseg.train.seed", "massseg.train.seed", "massclass.train.seed")
#: Metrics whose drop the tables show (all are in the JSON).
SHOWN = ("breast_dice", "mass_dice", "mass_pixel_auc", "case_roc_auc", "case_roc_auc_ci_low")


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """What makes a results file comparable: styles, data, training seed, code."""
    return {"styles": list(args.styles), "cases": args.cases, "seed": args.seed,
            "size": args.size, "train_seed": args.train_seed, "code": args.code}


def cross_path_mapper(raw_other: Path, xdir: str, *, split_out: bool) -> Any:
    """Maps the pipeline's relative paths to the cross evaluation's (see the module doc)."""

    def mapping(arg: str) -> str:
        if arg == "data/raw" or arg.startswith("data/raw/"):
            return str(raw_other) + arg[len("data/raw"):]
        if arg == "data/splits.json" and not split_out:
            return arg  # the training run's split: same case ids in both styles
        if arg.startswith(("data/", "metrics/", "plots/")):
            return f"{xdir}/{arg}"
        return arg

    return mapping


def split_test_cases(path: Path) -> list[str] | None:
    """The ``test`` case ids of a splits file (``None`` when unreadable)."""
    try:
        return sorted(json.loads(path.read_text(encoding="utf-8"))["test"])
    except (OSError, json.JSONDecodeError, KeyError):
        return None


def prepare_copy(style: str, args: argparse.Namespace, runner: R.Runner) -> tuple[Path, bool]:
    """The copy that trains on ``style``: cloned, params set, ``data/raw`` synthesised.

    Returns:
        ``(copy, existed)``: ``existed`` when an earlier invocation's copy is reused.
    """
    copy = args.work / f"train_{style}"
    if copy.exists() and (args.force or not (copy / ".git").exists()):
        runner.note(f"remove the previous copy {copy}")
        if not runner.dry_run:
            shutil.rmtree(copy)
    existed = copy.exists() and not runner.dry_run
    if not existed:
        R.make_copy(copy, runner)
        if args.train_seed is not None:
            R.set_params(copy / "params.yaml", dict.fromkeys(TRAIN_SEED_KEYS, args.train_seed),
                         runner)
    env = R.copy_env(copy, args.code)
    if runner.dry_run or not (copy / "data" / "raw").exists():
        if not runner.dry_run and not R.synth_has_style(env):
            raise SystemExit(f"`mammo synth` has no --style option in the code of {copy} "
                             f"(--code {args.code}); commit it, or try --code venv")
        runner.run(R.synth_command("data/raw", cases=args.cases, seed=args.seed, size=args.size,
                                   style=style), cwd=copy, env=env, name=f"synth_{style}")
    return copy, existed


def cross_evaluate(copy: Path, other: str, raw_other: Path, args: argparse.Namespace,
                   runner: R.Runner) -> dict[str, Any]:
    """Runs ``EVAL_STAGES`` in ``copy`` (its trained models) on ``raw_other``."""
    env = R.copy_env(copy, args.code)
    xdir = f"xstyle/{other}"
    root = R.REPO if runner.dry_run else copy  # a dry run reads the working dvc.yaml/params
    cmds = R.stage_commands(root, EVAL_STAGES)
    if not runner.dry_run:
        for sub in ("data", "metrics/cases", "plots"):
            (copy / xdir / sub).mkdir(parents=True, exist_ok=True)
    records: dict[str, Any] = {}
    t0 = time.perf_counter()
    own_split = copy / "data" / "splits.json"
    use_own_split = True
    for stage in EVAL_STAGES:
        if stage == "breastseg_predict" and not runner.dry_run:
            mine = split_test_cases(copy / xdir / "data" / "splits.json")
            use_own_split = mine is not None and mine == split_test_cases(own_split)
            if not use_own_split:
                R.log(f"{other}'s split differs from the training run's: evaluating on "
                      f"{other}'s own test split")
        mapping = cross_path_mapper(raw_other, xdir,
                                    split_out=(stage == "split") or not use_own_split)
        cmd = R.with_venv_exe(R.rewrite_paths(cmds[stage], mapping))
        records[stage] = vars(runner.run(cmd, cwd=copy, env=env, name=f"{stage}_{other}"))
    if runner.dry_run:
        return {}
    return {
        "metrics": R.read_metrics(copy / xdir),
        "raw": str(raw_other),
        "out": str(copy / xdir),
        "splits_same_test_cases": use_own_split,
        "splits_used": str(own_split if use_own_split else copy / xdir / "data" / "splits.json"),
        "stages": records,
        "wall_s": time.perf_counter() - t0,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def drops(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per direction and metric: own, cross, own - cross, relative drop."""
    out = []
    for s, run in runs.items():
        own = run.get("own") or {}
        for t, cross in (run.get("cross") or {}).items():
            for m in R.METRICS:
                a, b = own.get(m.name), cross["metrics"].get(m.name)
                d = None if a is None or b is None else a - b
                out.append({"train": s, "test": t, "metric": m.name, "own": a, "cross": b,
                            "drop": d, "relative_drop_pct": None if d is None or not a
                            else 100.0 * d / a, "target": m.target})
    return out


def complete(run: dict[str, Any] | None, others: Sequence[str]) -> bool:
    """Whether a training style's run and all its cross evaluations are in the results."""
    return bool(run) and "own" in run and all(t in run.get("cross", {}) for t in others)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, do the missing steps, print and write the drops."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--styles", nargs="+", default=["film", "digital"],
                   help="mammo synth --style values; each trains once and tests on the others")
    p.add_argument("--cases", type=int, default=None, help="mammo synth --cases (default: its)")
    p.add_argument("--seed", type=int, default=None, help="mammo synth --seed (default: its)")
    p.add_argument("--size", default=None, help="mammo synth --size ROWSxCOLS (default: its)")
    p.add_argument("--train-seed", type=int, default=None,
                   help="set every stage's training seed (default: params.yaml's)")
    p.add_argument("--code", choices=("copy", "venv"), default="copy",
                   help="copy: the copies' committed packages (PYTHONPATH); venv: the working "
                        "tree's (what .venv has installed)")
    p.add_argument("--name", default="cross_style",
                   help="results file (bench/results/NAME.json) and work folder name")
    p.add_argument("--work", type=Path, default=None,
                   help="where the copies go (default: $MAMMO_BENCH_WORK/NAME)")
    p.add_argument("--force", action="store_true", help="re-do every step")
    p.add_argument("--keep", action="store_true", help="keep the copies at the end")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    if len(set(args.styles)) < 2:
        p.error("--styles needs at least two different styles")
    args.work = (args.work or R.WORK_DIR / args.name).resolve()
    runner = R.Runner(dry_run=args.dry_run, log_dir=args.work / "logs")

    config = config_of(args)
    previous = {} if args.force else R.load_results(args.name)
    if previous and previous.get("config") != config:
        raise SystemExit(f"{R.results_path(args.name)} holds another configuration "
                         f"({previous.get('config')}); pass --force to replace it or "
                         "--name for a new file")
    runs: dict[str, dict[str, Any]] = dict(previous.get("runs", {}))

    def save() -> None:
        if not args.dry_run:
            R.write_results(args.name, {"config": config, "runs": runs, "drops": drops(runs)})

    others = {s: [t for t in args.styles if t != s] for s in args.styles}
    todo = [s for s in args.styles if not complete(runs.get(s), others[s])]
    R.log(f"training styles to do: {', '.join(todo) or 'none'}"
          + ("  [dry run]" if args.dry_run else ""))
    if args.dry_run and todo:
        R.dry_run_preamble(args.code, True)
    copies: dict[str, Path] = {}
    existed: dict[str, bool] = {}
    if todo:  # every style's data is needed: as training data or as the other's test data
        for style in args.styles:
            if args.dry_run:
                print(f"\n## prepare {style}", flush=True)
            copies[style], existed[style] = prepare_copy(style, args, runner)
    for s in todo:
        copy = copies[s]
        run = runs.setdefault(s, {})
        if args.dry_run:
            print(f"\n## train on {s}", flush=True)
        # always: a no-op in seconds when the copy's run finished, the training otherwise
        # (first time, interrupted, or a copy deleted before its cross evaluations)
        rec = R.dvc_repro(copy, R.copy_env(copy, args.code), runner)
        if not args.dry_run and ("own" not in run or not existed[s]):
            run.update(own=R.read_metrics(copy), dvc_repro=vars(rec), wall_s=rec.wall_s,
                       cpu_s=rec.cpu_s, resumed=existed[s], copy=str(copy),
                       copy_git=R.git_state(copy))
            R.log(f"{s} on {s}: " + ", ".join(f"{k}={run['own'].get(k)}" for k in SHOWN))
            save()
        for t in others[s]:
            if t in run.get("cross", {}):
                R.log(f"{s} -> {t}: in the results already, skipped")
                continue
            if args.dry_run:
                print(f"\n## models trained on {s}, evaluated on {t}", flush=True)
            res = cross_evaluate(copy, t, copies[t] / "data" / "raw", args, runner)
            if not args.dry_run:
                run.setdefault("cross", {})[t] = res
                R.log(f"{s} -> {t}: " + ", ".join(f"{k}={res['metrics'].get(k)}"
                                                  for k in SHOWN))
                save()
    if args.dry_run:
        return
    table = [d for d in drops(runs) if d["metric"] in SHOWN]
    R.print_table(["train -> test", "metric", "own test split", "other style's test split",
                   "drop", "drop %"],
                  [[f"{d['train']} -> {d['test']}", d["metric"], d["own"], d["cross"], d["drop"],
                    d["relative_drop_pct"]] for d in table],
                  title="Cross-style robustness of the demo cascade (test split of each style)")
    R.print_table(["trained on", "dvc repro wall min", "CPU min", "resumed"],
                  [[s, r.get("wall_s", 0) / 60, r.get("cpu_s", 0) / 60,
                    bool(r.get("resumed"))] for s, r in runs.items()],
                  title="Training runs")
    save()
    R.log(f"wrote {R.results_path(args.name)}")
    if all(complete(runs.get(s), others[s]) for s in args.styles) and not args.keep:
        for style in args.styles:
            copy = copies.get(style, args.work / f"train_{style}")
            if copy.exists():
                R.log(f"every step done: removing the copy of {style}, {copy}")
                shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    main()
