"""Peaks that are peaks: this CPU's theoretical FLOP rate and its best measured matmul.

MFU elsewhere in ``bench/`` (``train_throughput.py``, ``profile_unet5l.py``) divides by one
2048x2048 ``tf.linalg.matmul`` timed next to the work; single convolutions beat it, so it is a
yardstick, not a peak. This script measures two real ceilings and puts the training rates and
the unet5l encoder convolutions against both:

(a) **Theoretical peak** = cores x FLOPs per cycle per core x clock, in float32 and bfloat16.
    FLOPs per cycle come from the micro-architecture (assumption, stated in the JSON), checked
    by a micro-benchmark: a small C program (``gcc -O2 -mavx512f -mavx512bf16``) times a
    dependent chain of integer adds (1 cycle each: the clock the core actually runs at, which a
    VM's ``/proc/cpuinfo`` does not report), 16 independent accumulators of 512-bit FMAs
    (``vfmadd231ps``, 32 FLOPs each) and of bfloat16 dot products (``vdpbf16ps``, 64 FLOPs
    each), on 1 and on all cores. FLOPs per cycle = FMA rate / (threads x clock). The peak is
    given at the nominal clock (``cpu MHz`` of /proc/cpuinfo) and at the measured one.
(b) **Best standalone matmul**: ``tf.linalg.matmul`` of n x n by n x n (2 n^3 FLOPs) over
    ``--sizes`` in float32 and bfloat16, with TensorFlow's intra-op threads at each of
    ``--threads`` (one child process per setting: the thread pool is fixed at start), rounds
    alternating the settings; best = the highest rate of any repetition (min time).

The same children time the unet5l f=16 encoder convolutions of ``profile_unet5l.py`` (3x3, batch
2, forward + both gradients, 1024x768 levels 1-5), so a kernel that beats the 2048 matmul can
be put against every matmul size and thread setting of the same run.

Run it alone (it saturates the cores); under load the rates drop, so the load average before
each measurement is recorded.

Usage::

    python bench/peak.py --quick   # sizes 1024,2048; 3 reps; ~1 min
    python bench/peak.py           # sizes 1024,2048,3072,4096; threads 1,2; 2 rounds; ~3 min
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as C

C_SOURCE = r"""
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static long iters; static int mode;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);
  return t.tv_sec+1e-9*t.tv_nsec;}
#define A "add $1, %0\n\t"
#define A10 A A A A A A A A A A
#define R16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) \
  X(14) X(15)
#define DECL(k) __m512 a##k = _mm512_set1_ps((float)k);
#define FMA(k) a##k = _mm512_fmadd_ps(a##k, b, c);
#define DOT(k) a##k = _mm512_dpbf16_ps(a##k, x, y);
#define SUM(k) s = _mm512_add_ps(s, a##k);
static double cpu_now(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);
  return t.tv_sec+1e-9*t.tv_nsec;}
static void *work(void *arg){
  double *out = (double *)arg;
  double c0 = cpu_now();
  if (mode == 0) {            /* dependent adds: 100 per iteration, 1 cycle each */
    unsigned long v = 0;
    for (long i = 0; i < iters; i++)
      __asm__ volatile(A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 : "+r"(v));
    out[0] = (double)v;
  } else if (mode == 1) {     /* 16 independent 512-bit float32 FMAs per iteration */
    __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
    R16(DECL)
    for (long i = 0; i < iters; i++) { R16(FMA) }
    __m512 s = _mm512_setzero_ps(); R16(SUM) out[0] = _mm512_reduce_add_ps(s);
  } else {                    /* 16 independent 512-bit bfloat16 dot products */
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
    R16(DECL)
    for (long i = 0; i < iters; i++) { R16(DOT) }
    __m512 s = _mm512_setzero_ps(); R16(SUM) out[0] = _mm512_reduce_add_ps(s);
  }
  out[1] = cpu_now() - c0;   /* this thread's CPU time: time-slicing by other load left out */
  return NULL;
}
int main(int argc, char **argv){
  mode = atoi(argv[1]); int nt = atoi(argv[2]); iters = atol(argv[3]);
  pthread_t th[256]; static double out[256][8];
  double t0 = now();
  for (int i = 0; i < nt; i++) pthread_create(&th[i], NULL, work, out[i]);
  for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
  double wall = now() - t0, cpu = 0;
  for (int i = 0; i < nt; i++) cpu += out[i][1] / nt;
  printf("%.9f %.9f %g\n", wall, cpu, out[0][0]);
  return 0;
}
"""

# micro-benchmark modes: name -> (mode, FLOPs per iteration per thread, ops per iteration)
MICRO = {
    "clock_add_chain": (0, 0, 100),  # 100 dependent adds = 100 cycles
    "fma_float32": (1, 16 * 16 * 2, 16),  # 16 FMAs x 16 lanes x (mul + add)
    "dot_bfloat16": (2, 16 * 32 * 2, 16),  # 16 VDPBF16PS x 32 bf16 pairs x (mul + add)
}

# FLOPs per cycle per core by micro-architecture (the assumption of the theoretical peak)
ARCH = {
    "zen5": {
        "match": "AMD family 26 (0x1A, Zen 5) with avx512f",
        "fp32_flops_per_cycle": 64,
        "bf16_flops_per_cycle": 128,
        "assumption": (
            "Zen 5 (EPYC 9005) executes 512-bit vectors natively: 2 FMA pipes x 16 float32 "
            "lanes x 2 FLOPs (multiply + add) = 64 float32 FLOPs per cycle per core; bfloat16 "
            "through AVX512_BF16 VDPBF16PS on the same 2 pipes: 32 bf16 pairs x 2 FLOPs = 64 "
            "per instruction, 2 per cycle = 128 FLOPs per cycle per core (no AMX on this CPU)"
        ),
    },
    "zen4": {
        "match": "AMD family 25 (0x19) with avx512f (Zen 4)",
        "fp32_flops_per_cycle": 32,
        "bf16_flops_per_cycle": 64,
        "assumption": "Zen 4 splits 512-bit ops over 256-bit units: 2 x 8 lanes x 2 = 32",
    },
    "avx512_2fma": {
        "match": "Intel with avx512f (2 FMA units assumed)",
        "fp32_flops_per_cycle": 64,
        "bf16_flops_per_cycle": 128,
        "assumption": "2 x 512-bit FMA units (server Xeon); bfloat16 via VDPBF16PS, no AMX",
    },
}


def cpu_facts() -> dict[str, Any]:
    """CPU family/model, nominal MHz, cores, and the micro-architecture guess."""
    facts: dict[str, Any] = {"model_name": C.cpu_model(), "flags": C.cpu_flags()}
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip(), val.strip()
        if key in ("vendor_id", "cpu family", "model", "cpu MHz", "bogomips") and key not in facts:
            facts[key] = val
    facts["cores"] = len(os.sched_getaffinity(0))
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        keep = (
            "Model name",
            "CPU family",
            "Model:",
            "Thread(s) per core",
            "Core(s) per socket",
            "Socket(s)",
            "Hypervisor vendor",
            "L2 cache",
            "L3 cache",
            "CPU max MHz",
        )
        facts["lscpu"] = [ln.strip() for ln in lscpu.splitlines() if ln.strip().startswith(keep)]
    except (OSError, subprocess.CalledProcessError):
        facts["lscpu"] = None
    family = int(facts.get("cpu family", "0") or 0)
    avx512 = "avx512f" in facts["flags"]
    amd = facts.get("vendor_id") == "AuthenticAMD"
    if amd and family == 26 and avx512:
        facts["uarch"] = "zen5"
    elif amd and family == 25 and avx512:
        facts["uarch"] = "zen4"
    elif avx512:
        facts["uarch"] = "avx512_2fma"
    else:
        facts["uarch"] = None
    return facts


def compile_micro() -> Path | None:
    """Builds the C micro-benchmark under WORK_DIR (None without gcc)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    C.WORK_DIR.mkdir(parents=True, exist_ok=True)
    src = C.WORK_DIR / "peak_micro.c"
    exe = C.WORK_DIR / "peak_micro"
    src.write_text(C_SOURCE)
    subprocess.run(
        [gcc, "-O2", "-mavx512f", "-mavx512bf16", "-pthread", str(src), "-o", str(exe)], check=True
    )
    return exe


def run_micro(exe: Path, name: str, threads: int, seconds: float = 0.5) -> dict[str, Any]:
    """One micro-benchmark run of about ``seconds``: time, rate per thread and in total."""
    mode, flops, ops = MICRO[name]
    iters = 2_000_000
    while True:  # calibrate to ~seconds on one thread
        t = float(
            subprocess.run(
                [str(exe), str(mode), "1", str(iters)], capture_output=True, text=True, check=True
            ).stdout.split()[1]
        )
        if t > 0.05:
            break
        iters *= 4
    iters = int(iters * seconds / t)
    load = os.getloadavg()[0]
    wall, cpu = (
        float(v)
        for v in subprocess.run(
            [str(exe), str(mode), str(threads), str(iters)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[:2]
    )
    # rates per second of each thread's own CPU time (what the core does while it runs the
    # thread, whatever else shares the machine), and per second of wall time (all threads)
    out = {
        "threads": threads,
        "iters": iters,
        "wall_s": wall,
        "thread_cpu_s": cpu,
        "loadavg_1min_before": load,
    }
    if flops:
        out["gflops_per_core"] = flops * iters / cpu / 1e9
        out["gflops_wall_all_threads"] = flops * iters * threads / wall / 1e9
    else:
        out["ghz"] = ops * iters / cpu / 1e9  # cycles per CPU-second of each thread
        out["ghz_wall"] = ops * iters / wall / 1e9
    return out


# --------------------------------------------------------------------------- TF children

LEVELS = [(1, 1, 1, 1), (2, 2, 2, 2), (3, 4, 4, 4), (4, 8, 8, 8), (5, 16, 16, 16)]


def child(threads: int, sizes: list[int], reps: int, conv: bool) -> dict[str, Any]:
    """Matmul sweep (and unet5l encoder convs) with ``threads`` intra-op threads."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    out: dict[str, Any] = {
        "intra_op_threads": threads,
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "matmul": [],
        "conv": [],
    }
    jobs: list[tuple[str, Any, float, dict[str, Any]]] = []
    for dtype in ("float32", "bfloat16"):
        for n in sizes:
            jobs.append(("matmul", C.make_matmul(dtype, n), 2.0 * n**3, {"dtype": dtype, "n": n}))
    if conv:
        h, w, f, batch = 1024, 768, 16, 2
        for dtype in ("float32", "bfloat16"):
            tfd = {"float32": tf.float32, "bfloat16": tf.bfloat16}[dtype]
            for lvl, div, cin_m, cout_m in LEVELS:
                hh, ww, cin, cout = h // div, w // div, f * cin_m, f * cout_m
                x = tf.cast(tf.random.uniform((batch, hh, ww, cin)), tfd)
                k = tf.Variable(tf.cast(tf.random.normal((3, 3, cin, cout)) * 0.1, tfd))

                @tf.function
                def step(x=x, k=k):
                    with tf.GradientTape() as tape:
                        tape.watch(x)
                        y = tf.nn.conv2d(x, k, 1, "SAME")
                        s = tf.reduce_sum(tf.cast(y, tf.float32))
                    gx, gk = tape.gradient(s, [x, k])
                    # s is returned: otherwise Grappler prunes the forward conv (the gradients
                    # of a sum do not need it) and only 2 of the 3 counted convs run
                    return s, tf.reduce_sum(tf.cast(gx[:1, :1, :1], tf.float32)) + tf.reduce_sum(
                        tf.cast(gk[:1], tf.float32)
                    )

                flops = 3 * 2.0 * batch * hh * ww * cout * 9 * cin
                jobs.append(
                    (
                        "conv",
                        lambda s=step: [t.numpy() for t in s()],
                        flops,
                        {
                            "dtype": dtype,
                            "level": lvl,
                            "size": [hh, ww],
                            "cin": cin,
                            "cout": cout,
                            "batch": batch,
                        },
                    )
                )
    times: list[list[float]] = [[] for _ in jobs]
    cpus: list[list[float]] = [[] for _ in jobs]
    for _, fn, _, _ in jobs:
        fn()
        fn()
    for _ in range(reps):  # rounds over every job: each kernel sees the same load
        for i, (_, fn, _, _) in enumerate(jobs):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
            cpus[i].append(time.process_time() - c0)
    cores = len(os.sched_getaffinity(0))
    for (kind, _, flops, meta), ts, cs in zip(jobs, times, cpus, strict=True):
        s, c = C.summarize(ts), C.summarize(cs)
        # wall: FLOPs per second; cpu: FLOPs per CPU-second of the process (every thread's
        # time while it ran, spinning included) times the cores, i.e. the all-core rate the
        # kernel would reach if each core ran it as fast as it did while it had the core
        out[kind].append(
            meta
            | {
                "flops": flops,
                "gflops_best": flops / s["min_s"] / 1e9,
                "gflops_median": flops / s["median_s"] / 1e9,
                "gflops_cpu_best": flops * cores / c["min_s"] / 1e9,
                "gflops_cpu_median": flops * cores / c["median_s"] / 1e9,
                "times_s": s["times_s"],
                "cpu_s": c["times_s"],
            }
        )
    return out


def run_child(threads: int, args: argparse.Namespace) -> dict[str, Any]:
    load = os.getloadavg()[0]
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(threads),
        "--sizes",
        args.sizes,
        "--reps",
        str(args.reps),
    ] + ([] if args.no_conv else ["--conv"])
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["loadavg_1min_before"] = load
    return out


# --------------------------------------------------------------------------- main


def _load_json(name: str) -> dict[str, Any] | None:
    path = C.RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", default=None, help="matmul n (default 1024,2048,3072,4096)")
    p.add_argument("--threads", default=None, help="intra-op threads (default 1,<cores>)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per child (5)")
    p.add_argument("--rounds", type=int, default=None, help="children per thread setting (2)")
    p.add_argument("--no-conv", action="store_true", help="skip the unet5l convolutions")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--conv", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.sizes = args.sizes or ("1024,2048" if args.quick else "1024,2048,3072,4096")
    args.reps = args.reps or (3 if args.quick else 5)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child is not None:
        print(json.dumps(child(args.child, sizes, args.reps, args.conv)))
        return

    facts = cpu_facts()
    cores = facts["cores"]
    threads = [int(t) for t in (args.threads or f"1,{cores}").split(",")]
    rounds = args.rounds or (1 if args.quick else 2)

    # (a) theoretical peak, with the clock and FLOPs per cycle measured
    micro: dict[str, list[dict[str, Any]]] = {}
    exe = compile_micro()
    if exe is not None:
        for _ in range(rounds):
            for name in MICRO:
                for t in sorted({1, cores}):
                    C.log(f"micro {name}, {t} thread(s)")
                    micro.setdefault(f"{name}_t{t}", []).append(run_micro(exe, name, t))
    else:
        C.log("no C compiler: the clock and FLOPs per cycle are not measured")
    # (b) matmul sweep and convolutions, children alternating the thread settings
    children: list[dict[str, Any]] = []
    for r in range(rounds):
        for t in threads:
            C.log(
                f"matmul sweep{'' if args.no_conv else ' + convs'}, intra-op threads {t}, "
                f"round {r + 1}/{rounds} (load {os.getloadavg()[0]:.2f})"
            )
            children.append(run_child(t, args))

    arch = ARCH.get(facts["uarch"] or "")
    nominal_ghz = float(facts.get("cpu MHz", 0) or 0) / 1000.0
    clock_runs = [m for k, v in micro.items() if k.startswith("clock") for m in v]
    measured_ghz = max((m["ghz"] for m in clock_runs), default=None)
    theoretical: dict[str, Any] = {
        "uarch": facts["uarch"],
        "cores": cores,
        "nominal_ghz": nominal_ghz,
        "nominal_ghz_source": "/proc/cpuinfo 'cpu MHz' (what the hypervisor reports)",
        "measured_ghz": measured_ghz,
        "measured_ghz_source": "dependent add chain, cycles per second of the thread's CPU time",
    }
    if arch:
        theoretical["assumption"] = arch["assumption"]
        for dtype, key, micro_key in (
            ("float32", "fp32_flops_per_cycle", "fma_float32"),
            ("bfloat16", "bf16_flops_per_cycle", "dot_bfloat16"),
        ):
            fpc = arch[key]
            entry: dict[str, Any] = {"flops_per_cycle_per_core": fpc}
            entry["peak_gflops_nominal_clock"] = cores * fpc * nominal_ghz
            entry["arithmetic_nominal"] = (
                f"{cores} cores x {fpc} FLOP/cycle x {nominal_ghz:.3f} GHz = "
                f"{cores * fpc * nominal_ghz:.0f} GFLOP/s"
            )
            if measured_ghz:
                entry["peak_gflops_measured_clock"] = cores * fpc * measured_ghz
                entry["arithmetic_measured"] = (
                    f"{cores} cores x {fpc} FLOP/cycle x {measured_ghz:.3f} GHz = "
                    f"{cores * fpc * measured_ghz:.0f} GFLOP/s"
                )
            runs = [m for k, v in micro.items() if k.startswith(micro_key) for m in v]
            if runs:
                per_core = max(m["gflops_per_core"] for m in runs)
                entry["micro_best_gflops_per_core"] = per_core
                entry["micro_best_gflops_wall_all_threads"] = max(
                    m["gflops_wall_all_threads"] for m in runs
                )
                if measured_ghz:
                    entry["micro_flops_per_cycle_per_core"] = per_core / measured_ghz
            theoretical[dtype] = entry

    def peak_a(dtype: str) -> float | None:
        return theoretical.get(dtype, {}).get("peak_gflops_measured_clock")

    # (b) matmul sweep: per dtype, size and thread setting, the best over every child
    table: dict[str, dict[str, Any]] = {}
    for ch in children:
        for m in ch["matmul"]:
            key = f"{m['dtype']}_n{m['n']}_t{ch['intra_op_threads']}"
            cur = table.setdefault(
                key,
                {
                    "dtype": m["dtype"],
                    "n": m["n"],
                    "intra_op_threads": ch["intra_op_threads"],
                    "gflops_wall_best": 0.0,
                    "gflops_cpu_best": 0.0,
                },
            )
            cur["gflops_wall_best"] = max(cur["gflops_wall_best"], m["gflops_best"])
            cur["gflops_cpu_best"] = max(cur["gflops_cpu_best"], m["gflops_cpu_best"])
    best: dict[str, dict[str, Any]] = {}
    for v in table.values():
        d = v["dtype"]
        v["cpu_of_theoretical"] = v["gflops_cpu_best"] / peak_a(d) if peak_a(d) else None
        if d not in best or v["gflops_cpu_best"] > best[d]["gflops_cpu_best"]:
            best[d] = dict(v)
        best[d]["gflops_wall_best_any"] = max(
            best[d].get("gflops_wall_best_any", 0.0), v["gflops_wall_best"]
        )
    sweep_rows = [
        [
            v["dtype"],
            v["n"],
            v["intra_op_threads"],
            v["gflops_wall_best"],
            v["gflops_cpu_best"],
            100 * v["cpu_of_theoretical"] if v["cpu_of_theoretical"] else "n/a",
        ]
        for v in table.values()
    ]

    # convolutions (all-core children) against the 2048 matmul, the best matmul and (a)
    allcore = [ch for ch in children if ch["intra_op_threads"] == max(threads)]
    convs: dict[str, dict[str, Any]] = {}
    for ch in allcore:
        for c in ch["conv"]:
            key = f"{c['dtype']}_level{c['level']}"
            cur = convs.setdefault(
                key,
                {k: c[k] for k in ("dtype", "level", "size", "cin", "cout", "batch", "flops")}
                | {"gflops_wall_best": 0.0, "gflops_cpu_best": 0.0},
            )
            cur["gflops_wall_best"] = max(cur["gflops_wall_best"], c["gflops_best"])
            cur["gflops_cpu_best"] = max(cur["gflops_cpu_best"], c["gflops_cpu_best"])
    mm2048 = {d: table.get(f"{d}_n2048_t{max(threads)}") for d in ("float32", "bfloat16")}
    conv_rows = []
    for c in convs.values():
        d = c["dtype"]
        ref = mm2048[d]
        c["of_matmul_2048_cpu"] = c["gflops_cpu_best"] / ref["gflops_cpu_best"] if ref else None
        c["of_best_matmul_cpu"] = c["gflops_cpu_best"] / best[d]["gflops_cpu_best"]
        c["of_theoretical"] = c["gflops_cpu_best"] / peak_a(d) if peak_a(d) else None
        conv_rows.append(
            [
                d,
                c["level"],
                "x".join(map(str, c["size"])),
                f"{c['cin']}->{c['cout']}",
                c["gflops_cpu_best"],
                100 * c["of_matmul_2048_cpu"] if ref else "n/a",
                100 * c["of_best_matmul_cpu"],
                100 * c["of_theoretical"] if c["of_theoretical"] else "n/a",
            ]
        )

    # the training rates of train_throughput.json (its own run) against both peaks
    mfu: list[dict[str, Any]] = []
    tt = _load_json("train_throughput")
    for r in tt["results"] if tt else []:
        d = r["precision"]
        mfu.append(
            {
                "model": r["model"],
                "input": r["input"],
                "precision": d,
                "bn": r.get("bn"),
                "achieved_gflops": r["achieved_gflops"],
                "mfu_reported": r["mfu"],
                "of_best_matmul": r["achieved_gflops"] / best[d]["gflops_cpu_best"],
                "of_theoretical": r["achieved_gflops"] / peak_a(d) if peak_a(d) else None,
            }
        )
    mfu_rows = [
        [
            m["model"],
            m["precision"],
            m["bn"],
            m["achieved_gflops"],
            100 * m["mfu_reported"],
            100 * m["of_best_matmul"],
            100 * m["of_theoretical"] if m["of_theoretical"] else "n/a",
        ]
        for m in mfu
    ]

    for dtype in ("float32", "bfloat16"):
        t = theoretical.get(dtype, {})
        print(
            f"\n{dtype}: (a) {t.get('arithmetic_measured', 'n/a')} at the measured clock "
            f"({t.get('arithmetic_nominal', 'n/a')} at the nominal one); micro-benchmark "
            f"{t.get('micro_best_gflops_per_core', 0):.0f} GFLOP/s per core = "
            f"{t.get('micro_flops_per_cycle_per_core', 0):.1f} FLOP/cycle; (b) best matmul "
            f"{best[dtype]['gflops_cpu_best']:.0f} GFLOP/s per CPU-second x cores "
            f"(n={best[dtype]['n']}, {best[dtype]['intra_op_threads']} threads)"
        )
    C.print_table(
        [
            "dtype",
            "n",
            "intra-op threads",
            "GFLOP/s wall (best)",
            "GFLOP/s CPU-time x cores (best)",
            "% of (a)",
        ],
        sweep_rows,
        title="matmul sweep",
    )
    if conv_rows:
        C.print_table(
            [
                "dtype",
                "level",
                "size",
                "channels",
                "GFLOP/s CPU-time x cores",
                "% of 2048 matmul",
                "% of best matmul (b)",
                "% of (a)",
            ],
            conv_rows,
            title="unet5l f=16 encoder convs fwd+bwd, batch 2, all cores",
        )
    if mfu_rows:
        C.print_table(
            [
                "model",
                "precision",
                "BN",
                "GFLOP/s (train_throughput.json)",
                "MFU reported %",
                "% of (b)",
                "% of (a)",
            ],
            mfu_rows,
            title="training rates against both peaks",
        )
    path = C.write_results(
        "peak_quick" if args.quick else "peak",
        {
            "mode": "quick" if args.quick else "full",
            "cpu": facts,
            "micro": micro,
            "theoretical": theoretical,
            "best_matmul": best,
            "matmul_sweep": list(table.values()),
            "conv": list(convs.values()),
            "training_mfu": mfu,
            "training_rates_from": "bench/results/train_throughput.json (its own run and date)",
            "children": children,
        },
    )
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
