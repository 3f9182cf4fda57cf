"""What a run needs, checked before it compiles: memory on its devices and on the host, and disk
for its output. A run that cannot fit is refused with the figure and what to change, instead of
failing after minutes (XLA's RESOURCE_EXHAUSTED) or filling a disk with checkpoints."""

import os
import shutil
from pathlib import Path

import numpy as np


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def available_memory(devices) -> int | None:
    """Bytes free for arrays on `devices` together: the accelerators' own memory where JAX
    reports it, the host's available memory (`MemAvailable`) for CPU devices; None if unknown."""
    total, host = 0, False
    for device in devices:
        stats = None
        if device.platform != "cpu":
            try:
                stats = device.memory_stats()
            except (AttributeError, NotImplementedError, RuntimeError):
                stats = None
        if stats and "bytes_limit" in stats:
            total += int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        elif device.platform == "cpu":
            host = True
        else:
            return None
    if host:
        free = host_memory()
        if free is None:
            return None
        total += free
    return total


def host_memory() -> int | None:
    """The host's available memory in bytes (Linux `MemAvailable`), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gas_bytes(
    *,
    n: int,
    copies: int,
    itemsize: int,
    n_saves: int,
    chunk_saves: int,
    save_state: bool,
    velocities: bool,
    components: int = 3,
) -> tuple[int, int]:
    """`(device, host)` bytes of a gas run: `copies` gases (realizations times sweep points) of
    `n` neutrinos. Device: the carried state (`components` per neutrino, 3 for two flavours and 8
    for three, and an int32 index), the step's
    temporaries (the moved copy, the permutation, the pair coefficients), fixed velocities,
    and a chunk's saved states. Host: the saved states of the whole run with their
    concatenated copy, and the final state."""
    vector = components * itemsize
    per_neutrino = 2 * (vector + 4) + 4 + itemsize + (2 * 3 * itemsize if velocities else 0)
    device = copies * n * per_neutrino
    if save_state:
        device += copies * n * vector * min(chunk_saves, n_saves)
    host = copies * n * vector * (1 + (2 * n_saves if save_state else 0))
    return device, host


def check_memory(device_bytes: int, host_bytes: int, devices, what: str, advice: str):
    """Refuse a run whose arrays cannot fit: on CPU devices the device and host bytes share the
    host's memory."""
    devices = list(devices)
    on_cpu = all(d.platform == "cpu" for d in devices)
    need = device_bytes + host_bytes if on_cpu else device_bytes
    free = available_memory(devices)
    if free is not None and need > free:
        place = "memory" if on_cpu else f"memory on {len(devices)} {devices[0].platform} device(s)"
        raise MemoryError(
            f"{what} needs about {_gib(need)} of {place}, but {_gib(free)} are available; {advice}"
        )
    if not on_cpu:
        free_host = host_memory()
        if free_host is not None and host_bytes > free_host:
            raise MemoryError(
                f"{what} brings about {_gib(host_bytes)} back to the host, but {_gib(free_host)} "
                f"of memory are available; {advice}"
            )


def check_disk(need: int, folder, what: str, advice: str):
    """Refuse to write `need` bytes into `folder` (or its nearest existing parent) without room."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if need > free:
        raise OSError(
            f"{what} needs about {_gib(need)} of disk in {folder}, but {_gib(free)} are free; "
            f"{advice}"
        )


def nbytes(shape, dtype) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def default_devices() -> list:
    """The device a single-device program runs on (JAX's default device), as a list."""
    import jax

    device = jax.config.jax_default_device
    if device is None or isinstance(device, str):
        device = jax.devices(device)[0] if isinstance(device, str) else jax.devices()[0]
    return [device]


def check_run_fits(device_bytes: int, host_bytes: int, what: str, advice: str) -> None:
    """`check_memory` on the default device: a single-device run refused before it compiles."""
    check_memory(device_bytes, host_bytes, default_devices(), what, advice)
