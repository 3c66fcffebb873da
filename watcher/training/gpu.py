"""GPU memory, utilisation and temperature per GPU through NVML (`nvidia-ml-py`).

Without NVML (no package, no driver, no GPU) `sample()` is None: absent, never zeros. The
daemon's own GPU memory is in the daemon row (its pipeline's allocation); here the whole
device, the trainer's use included.
"""

from __future__ import annotations

from typing import Any


def sample() -> list[dict[str, Any]] | None:
    """One dict per GPU (index, name, memory_used_mb, memory_total_mb, utilisation_pct,
    temperature_c), or None when NVML is not there."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    try:
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            out.append({
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_used_mb": round(memory.used / 2**20, 1),
                "memory_total_mb": round(memory.total / 2**20, 1),
                "utilisation_pct": pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                "temperature_c": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
            })
        return out
    except Exception:  # noqa: BLE001 - a GPU that stops answering: absent, not a crash
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
