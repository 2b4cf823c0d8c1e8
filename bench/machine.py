"""The machine a benchmark ran on, recorded beside its figures: CPU model, the vector flags that set CPU speed, cores.

Figures from an AVX-512 machine and an AVX2-only one differ about twofold for the same training, so every
result file and printed table names its machine; compare numbers only between like machines.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx512f", "avx512_bf16", "avx2", "amx_tile")
"""The CPU flags that decide which kernels torch can use: AVX-512 (and its bf16), AVX2 only, Intel AMX."""


def _cpuinfo() -> tuple[str, set[str]]:
    """CPU model name and flag set from /proc/cpuinfo (Linux); platform's processor string elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", set()
    model, flags = "unknown", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def machine(torch_threads: int | None = None) -> dict:
    """The record every bench/results/*.json carries under "machine".

    torch_threads: the threads the measured work ran with, where that is not this process's (a child process run
    with OMP_NUM_THREADS, or a pass given its own count); default: this process's.
    """
    model, flags = _cpuinfo()
    record = {"cpu_model": model, "cpus": os.cpu_count(),
              **{flag: flag in flags for flag in FLAGS},
              "platform": platform.platform(), "load_average_1min": round(os.getloadavg()[0], 2)}
    try:
        import torch
    except ImportError:
        return record
    record.update(torch=torch.__version__, torch_threads=torch_threads or torch.get_num_threads(),
                  torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
                  cuda_device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    return record


def describe(record: dict) -> str:
    """One line for a table title: 'AMD EPYC, 2 cores, AVX-512 (torch AVX512, 2 threads), load 1.9'."""
    vector = "AVX-512" if record.get("avx512f") else "AVX2" if record.get("avx2") else "no AVX2"
    torch_part = ""
    if "torch_threads" in record:
        threads = record["torch_threads"]
        torch_part = f" (torch {record['torch_cpu_capability']}, {threads} thread{'' if threads == 1 else 's'})"
    gpu = f", GPU {record['cuda_device']}" if record.get("cuda_device") else ""
    return (f"{record['cpu_model']}, {record['cpus']} cores, {vector}{torch_part}{gpu}, "
            f"load {record['load_average_1min']}")
