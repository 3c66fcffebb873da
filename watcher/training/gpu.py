"""GPU memory, utilisation and temperature per GPU through NVML (`nvidia-ml-py`).

Without NVML (no package, no driver, no GPU) `sample()` is None: absent, never zeros. Beside
each device's totals, the memory of the processes named in `pids` (the trainer's process
group, the daemon itself), so the page shows whose memory it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MIB = 2**20


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / MIB, 1)


def sample(pids: Mapping[str, Iterable[int]] | None = None) -> list[dict[str, Any]] | None:
    """One dict per GPU (index, name, memory_used_mb, memory_total_mb, utilisation_pct,
    temperature_c, and `<role>_mb` for each role in `pids`: the memory its processes hold
    there, None when NVML does not say), or None when NVML is not there."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    roles = {role: set(ids) for role, ids in (pids or {}).items()}
    try:
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            row: dict[str, Any] = {
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_used_mb": _mib(memory.used),
                "memory_total_mb": _mib(memory.total),
                "utilisation_pct": pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                "temperature_c": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
            }
            if roles:
                procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
                for role, ids in roles.items():
                    used = [p.usedGpuMemory for p in procs if p.pid in ids]
                    # no process there: 0; a process NVML cannot measure: unknown, not 0
                    row[f"{role}_mb"] = None if None in used else _mib(sum(used))
            out.append(row)
        return out
    except Exception:  # noqa: BLE001 - a GPU that stops answering: absent, not a crash
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
