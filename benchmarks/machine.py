"""The machine a benchmark ran on, recorded with every result (figures compare only within one machine)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def describe() -> dict:
    """CPU model, core count, torch version (and threads and GPU when this process imported torch), load
    average, ``OMP_WAIT_POLICY`` and the host. Does not import torch itself: a driver process stays light."""
    description = {
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": metadata.version("torch"),
        "load_avg": load_average(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "python": platform.python_version(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        description["torch_threads"] = torch.get_num_threads()
        description["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return description
