"""Process-wide runtime settings that must be in place before TensorFlow allocates memory.

TensorFlow's default CPU allocator hands every large tensor back to the operating system when it
is freed (glibc ``free`` -> ``munmap``), so the next training step maps and zero-fills the same
pages again. On virtual machines, where a page fault is expensive, that can cost a third of the
run time: one demo breast-U-Net epoch on a 2-core AMD EPYC (Zen 3) KVM guest took 300 s of CPU
time (108 s of it in the kernel, 25 M page faults, 252 s wall) with the default allocator and
209 s (22 s kernel, 3 M faults, 188 s wall) with TensorFlow's pooled best-fit-with-coalescing
(BFC) allocator, the same weights to the bit (``bench/cpu_allocator.py``,
``bench/results/cpu_allocator.json``; wall times on that shared VM vary by tens of seconds
between runs, CPU times less). The pool keeps what it has mapped for the life of the
process, so peak resident memory is what the largest step needed (+7 % there).

Importing :mod:`mammo_common` (which every stage package does first) sets
``TF_CPU_ALLOCATOR_USE_BFC=true`` unless the environment already says otherwise;
``TF_CPU_ALLOCATOR_USE_BFC=false`` restores TensorFlow's default. TensorFlow reads the variable
when it creates its CPU allocator (its first tensor), so a process that computed with TensorFlow
before importing mammo keeps the default. The JAX backend is unaffected.
"""

from __future__ import annotations

import os

#: The environment variable TensorFlow reads to choose its CPU allocator.
CPU_ALLOCATOR_ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def prefer_pooled_cpu_allocator() -> bool:
    """Ask TensorFlow for its pooled (BFC) CPU allocator unless the user chose already.

    Returns:
        Whether the pooled allocator is requested after the call.
    """
    os.environ.setdefault(CPU_ALLOCATOR_ENV, "true")
    return os.environ[CPU_ALLOCATOR_ENV].strip().lower() in {"1", "true", "yes"}
