"""Realizations across devices: a one-axis `jax.sharding.Mesh` over the realization axis.

Realizations are independent and each draws its numbers from `fold_in(key, r)`, so a sharded
ensemble makes the encounters of an unsharded one, with its numbers to rounding (the partitioned
program is another XLA program: fusion and reduction order may differ); XLA partitions the
vmapped step along the sharded axis with no communication except for the saved observables
brought to the host.
"""

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "realizations"


def platform() -> str:
    """The platform ("cpu", "gpu", "tpu") the computations traced now will run on: that of JAX's
    default device where one is set (`jax.default_device(...)`, as `oile run --device` does),
    else JAX's default backend. Code written for one backend is chosen by this, not by
    `jax.default_backend()` alone, which names the GPU on a GPU host even under
    `--device cpu`."""
    device = jax.config.jax_default_device
    if device is None:
        return jax.default_backend()
    return device if isinstance(device, str) else device.platform


def device_list(devices: "str | int | Sequence") -> list:
    """The devices named by a `devices` option: `"all"` (every device JAX sees, on every host),
    a number of devices (the first ones), or a list of devices."""
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(
                f"devices must be 'all', a count or a list of devices, got {devices!r}"
            )
        devices = jax.devices()
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            here = (
                "this machine has 1 device (JAX sees only this one)"
                if len(available) == 1
                else f"this machine has {len(available)}: give 1 to {len(available)}"
            )
            raise ValueError(f"devices={devices} asks for more devices than there are: {here}")
        devices = available[:devices]
    devices = list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(
            f"devices must be 'all', a count or a list of jax devices, got {devices!r}"
        )
    return devices


def realization_sharding(devices: "str | int | Sequence | None", n_realizations: int):
    """A `NamedSharding` that splits the leading (realization) axis over `devices` (see
    `device_list`), or None (no sharding) when `devices` is None."""
    return leading_axis_sharding(
        devices, n_realizations, AXIS, f"n_realizations={n_realizations}", "realizations"
    )


def placement(sharding) -> list:
    """The devices a `sharding` (or, for None, JAX's default placement) puts arrays on."""
    if sharding is not None:
        return list(sharding.device_set)
    return list(jax.numpy.zeros(()).devices())


def leading_axis_sharding(devices, size: int, axis: str, what: str, things: str):
    """A `NamedSharding` that splits a leading axis of `size` (named `axis`) over `devices`, or
    None when `devices` is None; `what` and `things` name the axis in the error message."""
    if devices is None:
        return None
    devices = device_list(devices)
    if size % len(devices):
        raise ValueError(
            f"{what} must be a multiple of the number of devices ({len(devices)}) to shard "
            f"{things} across them"
        )
    return NamedSharding(Mesh(np.asarray(devices), (axis,)), PartitionSpec(axis))


def shard(x, sharding):
    """`x` placed with `sharding` (unchanged when `sharding` is None)."""
    return x if sharding is None else jax.device_put(x, sharding)


def to_host(x) -> np.ndarray:
    """`x` as one NumPy array, on every host: arrays with shards on other hosts (after
    `jax.distributed.initialize`) are gathered with `process_allgather`."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def is_main_process() -> bool:
    """True on the process that writes files (process 0; the only one without
    `jax.distributed`)."""
    return jax.process_index() == 0
