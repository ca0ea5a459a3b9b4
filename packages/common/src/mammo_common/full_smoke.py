"""The full protocol's smoke run: ``python3 dev.py pipeline --full --smoke``.

It runs the real ``dvc.yaml`` with ``params-full.yaml``'s grid (every mass network and
classifier, every fold, the reference's input sizes and batch sizes) on synthetic mammograms
as large as real ones (4000x3000, 16-bit DICOM, film and digital patients), with every
training cut to one epoch of one step (the classifier's three fine-tuning phases to one
epoch each), so that what a real run would do at these sizes (decoding, cropping, building,
training, saving, predicting, evaluating, reporting) is exercised end to end in a CPU hour
rather than GPU days.

It never touches the checkout's own pipeline: it works in a folder of its own (by default
``.smoke-full/`` in the repository root, ignored by Git and DVC), a DVC project without Git
holding copies of ``dvc.yaml``, ``.dvcignore`` and the packages' sources (the stages' code
dependencies), its own ``params.yaml`` (written from ``params-full.yaml`` by
:func:`smoke_params`), ``data/raw`` (``mammo synth``) and everything the stages write. Run
again, ``dvc repro`` re-runs only what changed (a code fix re-runs the stages that use it).

Each stage runs as its own ``dvc repro --single-item STAGE``, in ``dvc.yaml``'s order (which is
topological), so that its wall time and the peak resident memory of its largest process
(``os.wait4``'s ``ru_maxrss``) are measured apart; a final ``dvc status`` must find nothing to
do. The measurements go to ``full_smoke.json`` in the work folder (:func:`run_smoke`). A stage
that was up to date (its ``dvc.lock`` entry unchanged) keeps the measurement of the run that
last executed it (``measured``: that run's start; ``ran: false``), so a run resumed after a
fix still reports every stage's cost.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import yaml

#: Synthetic set: 12 patients give 32 mammograms (27 with a mass; seed 0) at a real size.
SMOKE_CASES = 12
SMOKE_SIZE = (4000, 3000)
SMOKE_SEED = 0
#: Work folder, relative to the repository root (in .gitignore and .dvcignore).
SMOKE_DIR = ".smoke-full"
#: What the smoke run copies from the checkout besides the packages' sources.
COPIED_FILES = ("dvc.yaml", ".dvcignore")
#: mammo_common modules of the runner itself, left out of the workspace's copy of the sources.
RUNNER_MODULES = ("pipeline.py", "full_smoke.py")
#: The reference's classifier phases, cut to one epoch each (massclass.config.reference_phases).
SMOKE_PHASES = [
    {"name": "head", "trainable": "head", "learning_rate": 1e-3, "epochs": 1},
    {"name": "top", "trainable": 0.25, "learning_rate": 1e-4, "epochs": 1},
    {"name": "all", "trainable": "all", "learning_rate": 1e-5, "epochs": 1,
     "early_stopping_patience": 1},
]


def smoke_params(full: dict[str, Any], folds: int | None = None) -> dict[str, Any]:
    """The smoke run's params: ``full`` (params-full.yaml) with every training cut to the minimum.

    Networks, classifiers, input sizes, batch sizes and the split are kept; breastseg and
    massseg train one epoch of one step (early stopping and learning-rate plateaus at patience
    1), massseg's optional refiner and false-positive reduction (if set) one epoch of one batch,
    and massclass its phases (the reference's three when ``full`` names none) one epoch each.
    The classifier trains on the true outlines (``roi.source: truth``): a mass network of one
    step finds no mass, so the ROIs of its predictions would be none.

    Args:
        full: The full protocol's params (not modified).
        folds: Keep only the first ``folds`` folds of each massseg and massclass matrix
            (``None``: every fold).

    Returns:
        A new params mapping for ``params.yaml``.

    Raises:
        ValueError: ``full`` lacks a section the pipeline needs, or ``folds`` is below 1.
    """
    for section in ("pipeline", "split", "breastseg", "massseg", "massclass"):
        if not isinstance(full.get(section), dict):
            raise ValueError(f"the full params have no '{section}' section")
    if folds is not None and folds < 1:
        raise ValueError(f"folds must be at least 1, not {folds}")
    params = copy.deepcopy(full)
    if folds is not None:
        for key in ("massseg_folds", "massclass_folds"):
            params["pipeline"][key] = list(params["pipeline"][key])[:folds]
    for stage in ("breastseg", "massseg"):
        train = params[stage].setdefault("train", {})
        train.update(epochs=1, steps_per_epoch=1, reduce_lr_patience=1)
        if train.get("early_stopping_patience", 5) is not None:
            train["early_stopping_patience"] = 1
    massseg = params["massseg"]["train"]
    if isinstance(massseg.get("refine"), dict):
        refine = massseg["refine"]
        refine.update(epochs=1, samples_per_epoch=refine.get("batch_size", 32))
    train = params["massclass"].setdefault("train", {})
    phases = train.get("phases") or SMOKE_PHASES
    train["phases"] = [
        {**phase, "epochs": 1}
        | ({"early_stopping_patience": 1} if phase.get("early_stopping_patience") else {})
        for phase in copy.deepcopy(phases)
    ]
    train.pop("epochs", None)
    # a one-step mass network finds no mass (test Dice 0 in the smoke run), so ROIs of its
    # predictions (the reference's `pred`) would leave the classifier nothing to train on:
    # it trains on the true outlines; prediction still classifies what the segmenter finds
    train["roi"] = {**(train.get("roi") or {}), "source": "truth"}
    return params


def _copy_sources(root: Path, work: Path) -> None:
    """Copy dvc.yaml, .dvcignore and the stages' code dependencies (``packages/*/src``).

    The runner's own modules (:data:`RUNNER_MODULES`) stay out: no stage runs them, and a
    change to the runner would otherwise re-run every stage of a resumed smoke run.
    """
    for name in COPIED_FILES:
        shutil.copyfile(root / name, work / name)
    caches = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(caches(folder, names))
        if Path(folder).resolve() == (root / "packages/common/src/mammo_common").resolve():
            skipped |= set(RUNNER_MODULES) & set(names)
        return skipped

    for src in sorted((root / "packages").glob("*/src")):
        dest = work / src.relative_to(root)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest, ignore=ignore)


def _call(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), flush=True)
    code = subprocess.call(cmd, cwd=cwd)
    if code:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {code}) in {cwd}")


def prepare_workspace(
    root: Path,
    work: Path,
    *,
    cases: int = SMOKE_CASES,
    size: tuple[int, int] = SMOKE_SIZE,
    seed: int = SMOKE_SEED,
    folds: int | None = None,
) -> dict[str, Any]:
    """Set up (or refresh) the smoke run's DVC project in ``work``.

    Copies ``dvc.yaml``, ``.dvcignore`` and ``packages/*/src`` from ``root``, writes
    ``params.yaml`` from ``root/params-full.yaml`` (:func:`smoke_params`), makes ``work`` a DVC
    project without Git (analytics and update checks off) and writes ``data/raw`` with
    ``mammo synth --style mixed`` (film and digital patients) unless it already holds a set
    synthesised with the same arguments.

    Args:
        root: The checkout (holds dvc.yaml, params-full.yaml, packages/).
        work: The smoke run's folder; created if missing. Must not be ``root``.
        cases: Synthetic patients (about 2.8 mammograms each).
        size: (rows, cols) of the synthetic mammograms.
        seed: ``mammo synth`` seed.
        folds: Folds kept per network and classifier (``None``: all).

    Returns:
        What ``data/raw`` holds (synth arguments, images, masses) and the seconds its
        synthesis took (recorded in ``data/raw.synth.json``; a reused set keeps its record).

    Raises:
        ValueError: ``work`` is the checkout itself.
        RuntimeError: ``dvc init``, ``dvc config`` or ``mammo synth`` failed.
    """
    root, work = root.resolve(), work.resolve()
    if work == root:
        raise ValueError("the smoke run needs a folder of its own, not the checkout itself")
    work.mkdir(parents=True, exist_ok=True)
    _copy_sources(root, work)
    full = yaml.safe_load((root / "params-full.yaml").read_text(encoding="utf-8"))
    header = (
        "# Written by `python3 dev.py pipeline --full --smoke` (mammo_common.full_smoke) from\n"
        "# params-full.yaml: every network, fold and classifier at the reference's sizes,\n"
        "# each training cut to one epoch of one step. Rewritten on every smoke run.\n"
    )
    (work / "params.yaml").write_text(
        header + yaml.safe_dump(smoke_params(full, folds), sort_keys=False), encoding="utf-8")
    if not (work / ".dvc").is_dir():
        _call(["dvc", "init", "--no-scm", "-q"], work)
    for key in ("core.analytics", "core.check_update"):
        _call(["dvc", "config", key, "false"], work)
    wanted = {"cases": cases, "size": list(size), "seed": seed, "style": "mixed"}
    marker = work / "data" / "raw.synth.json"
    raw = work / "data" / "raw"
    if raw.is_dir() and marker.is_file():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if done.get("arguments") == wanted:
            return done
    # in a child process: what the runner holds when it starts a stage counts in that stage's
    # peak (a child's ru_maxrss starts at its parent's resident set), so it stays small
    start = time.perf_counter()
    _call([sys.executable, "-m", "mammo_common.cli", "synth", str(raw), "--cases", str(cases),
           "--size", f"{size[0]}x{size[1]}", "--seed", str(seed), "--style", "mixed",
           "--overwrite"], work)
    seconds = time.perf_counter() - start
    truth = json.loads((raw / "truth" / "truth.json").read_text(encoding="utf-8"))["images"]
    masses = [sum(1 for f in files if f.startswith("mass_")) for files in truth.values()]
    done = {"arguments": wanted, "images": len(truth), "mass_images": sum(map(bool, masses)),
            "masses": sum(masses), "seconds": round(seconds, 1)}
    marker.write_text(json.dumps(done), encoding="utf-8")
    return done


def stage_names(work: Path) -> list[str]:
    """The stages of ``work/dvc.yaml`` in file order (matrix stages expanded), via ``dvc``."""
    proc = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=work,
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"dvc stage list failed in {work}:\n{proc.stderr}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _lock_entries(work: Path) -> dict[str, Any]:
    """The stages' entries of ``work/dvc.lock`` (empty before the first run)."""
    try:
        lock = yaml.safe_load((work / "dvc.lock").read_text(encoding="utf-8")) or {}
    except OSError:
        return {}
    return lock.get("stages", {}) if isinstance(lock, dict) else {}


def _earlier_rows(results: Path) -> dict[str, dict[str, Any]]:
    """The successful stage measurements of an earlier run's results file, by stage."""
    try:
        earlier = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    # a row that ran, or one carried over from a run that did (it has check_seconds); not a
    # skip without an earlier measurement (its seconds are DVC's check only)
    return {row["stage"]: row for row in earlier.get("stages", [])
            if isinstance(row, dict) and row.get("exit_code") == 0
            and (row.get("ran", True) or "check_seconds" in row)}


def _tree_stopped(pid: int) -> bool:
    """Whether ``pid`` or one of its descendants is stopped (SIGSTOP: state ``T``), on Linux."""
    todo, seen = [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] in "Tt":
            return True
        todo.extend(int(c) for c in children)
    return False


def run_stage(name: str, work: Path, extra: list[str] | None = None) -> dict[str, Any]:
    """``dvc repro --single-item NAME`` in ``work``: exit code, seconds, peak RSS (MiB).

    The peak is ``ru_maxrss`` of the DVC process and the stage command it waits for (the
    largest single process, not their sum), from ``os.wait4``. ``seconds`` is the wall time
    less ``stopped_seconds``, the time (sampled every half second) during which the stage's
    processes were stopped by SIGSTOP, as when a shared machine pauses them for another
    measurement; ``wall_seconds`` keeps the whole.
    """
    cmd = ["dvc", "repro", "--single-item", name, *(extra or [])]
    print("+", " ".join(cmd), flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=work)
    stopped = 0.0
    done = threading.Event()

    def watch() -> None:
        nonlocal stopped
        last = time.perf_counter()
        while not done.wait(0.5):
            now = time.perf_counter()
            if _tree_stopped(proc.pid):
                stopped += now - last
            last = now

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    return {
        "stage": name,
        "exit_code": proc.returncode,
        "seconds": round(wall - stopped, 1),
        "wall_seconds": round(wall, 1),
        "stopped_seconds": round(stopped, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version()}
    try:
        meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
        info["memory_gib"] = round(int(meminfo[1]) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    return info


def _commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def stage_groups(names: list[str]) -> list[list[str]]:
    """Split the stage list into groups that may run at the same time.

    The entries of one matrix stage (``massseg_train@<arch>-<fold>``, ``massclass_train@...``)
    read the same inputs and write their own model folders, so they are independent of each
    other; every other stage is a group of its own, run after everything before it.
    """
    groups: list[list[str]] = []
    for name in names:
        base = name.split("@", 1)[0] if "@" in name else None
        if base and groups and groups[-1][0].split("@", 1)[0] == base and "@" in groups[-1][0]:
            groups[-1].append(name)
        else:
            groups.append([name])
    return groups


def run_smoke(
    root: Path,
    work: Path | None = None,
    *,
    cases: int = SMOKE_CASES,
    size: tuple[int, int] = SMOKE_SIZE,
    folds: int | None = None,
    jobs: int = 1,
    repro_args: list[str] | None = None,
    results: Path | None = None,
) -> int:
    """Prepare the workspace, run every stage, write the measurements.

    Args:
        root: The checkout.
        work: The smoke run's folder (default ``root/.smoke-full``).
        cases: Synthetic patients.
        size: (rows, cols) of the synthetic mammograms.
        folds: Folds kept per network and classifier (``None``: all five).
        jobs: How many entries of a matrix stage run at once (:func:`stage_groups`), each its
            own ``dvc repro --single-item`` (DVC locks each path it reads or writes, not the
            project, while a stage command runs); the other stages run one at a time.
        repro_args: Extra arguments for every ``dvc repro`` (e.g. ``["--force"]``).
        results: Where to write the JSON (default ``work/full_smoke.json``); written after
            every stage, so a failed run keeps what it measured.

    Returns:
        0 when every stage ran and ``dvc status`` finds nothing to do, else the failing
        stage's exit code (or 1).

    Raises:
        ValueError: ``jobs`` is below 1.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    work = (work or root / SMOKE_DIR).resolve()
    results = results or work / "full_smoke.json"
    record: dict[str, Any] = {
        "command": "python3 dev.py pipeline --full --smoke"
        + (f" --smoke-folds {folds}" if folds else "")
        + (f" --smoke-jobs {jobs}" if jobs > 1 else ""),
        "commit": _commit(root),
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "data": {"cases": cases, "size": list(size), "style": "mixed", "bits": 16,
                 "format": "DICOM (CBIS-DDSM layout)"},
        "folds": folds or "all",
        "jobs": jobs,
        "stages": [],
    }

    def save() -> None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    start = time.perf_counter()
    earlier = _earlier_rows(results)
    record["data"]["synth"] = prepare_workspace(root, work, cases=cases, size=size, folds=folds)
    save()

    def measured(name: str) -> dict[str, Any]:
        before = _lock_entries(work).get(name)
        row = run_stage(name, work, repro_args)
        row["ran"] = row["exit_code"] != 0 or _lock_entries(work).get(name) != before
        row["measured"] = record["started"]
        if not row["ran"] and name in earlier:
            # up to date: the measurement is the run's that last executed the stage
            row = {**earlier[name], "ran": False, "check_seconds": row["seconds"]}
        return row

    status = 0
    for group in stage_groups(stage_names(work)):
        if jobs == 1 or len(group) == 1:
            rows = []
            for name in group:
                rows.append(measured(name))
                if rows[-1]["exit_code"]:
                    break
        else:
            rows = []
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for future in as_completed([pool.submit(measured, name) for name in group]):
                    row = future.result()
                    if row["ran"]:
                        row["concurrent_jobs"] = jobs
                    rows.append(row)
                    record["stages"].append(row)
                    save()  # as each finishes: an interrupted group keeps what it measured
            rows.sort(key=lambda row: group.index(row["stage"]))
            del record["stages"][-len(rows):]
        record["stages"].extend(rows)
        save()
        failed = [row for row in rows if row["exit_code"]]
        if failed:
            status = failed[0]["exit_code"]
            record["failed_stage"] = failed[0]["stage"]
            break
    if not status:
        check = subprocess.run(["dvc", "status"], cwd=work, capture_output=True, text=True,
                               check=False)
        record["dvc_status"] = check.stdout.strip()
        if check.returncode or "up to date" not in check.stdout.lower():
            status = 1
    stages = record["stages"]
    record["total_seconds"] = round(time.perf_counter() - start, 1)
    record["stage_seconds"] = round(sum(s["seconds"] for s in stages), 1)
    if stages:
        record["peak_rss_mib"] = max(s["peak_rss_mib"] for s in stages)
        record["slowest"] = [s["stage"] for s in sorted(stages, key=lambda s: -s["seconds"])[:5]]
    record["ok"] = not status
    report = work / "reports" / "report.md"
    if report.is_file():
        record["report"] = str(report.relative_to(work))
    save()
    return status
