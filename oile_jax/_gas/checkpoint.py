"""Gas checkpoints: one format for every engine (`engine.AbstractGasEngine`), one fingerprint
of the run, written atomically after every chunk and read back on resume.

The fingerprint identifies a run by the values that shape it, never by their text: every array
and number (the gas, the coupling, B, L, the angle model's and the schedule's fields, the
profiles) enters by a hash of its bytes, shape and dtype, each module field under its own name
(`schedule.dt`, `angles.directions`), so a mismatch names what differs. A checksum of the
stored arrays and the fingerprint guards against a damaged file."""

import dataclasses
import hashlib
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._support.sharding import is_main_process

# The random streams and the engine's state: a checkpoint of another format is refused. The
# history of the format is in CHANGELOG.md.
FORMAT = 9


def by_value(value) -> str:
    """A hash of `value`'s numbers (their bytes, shapes and dtypes) and structure (classes and
    static fields, never an object's address)."""
    from .._support.programs import _describe

    leaves, treedef = jax.tree_util.tree_flatten(value)
    digest = hashlib.sha256(_describe(treedef).encode())
    for leaf in leaves:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, complex, bool)):
            array = np.ascontiguousarray(np.asarray(leaf))
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        else:
            digest.update(repr(leaf).encode())
    return digest.hexdigest()


def _fields(name: str, module) -> dict:
    """`{name.kind: class, name.field: value, ...}` for a module (the angle model, the
    schedule, a profile; nested modules in turn), so that a mismatch names the field."""
    values = {f"{name}.kind": f"{type(module).__module__}.{type(module).__qualname__}"}
    for field in dataclasses.fields(module):
        values.update(_entry(f"{name}.{field.name}", getattr(module, field.name, None)))
    return values


def _entry(name: str, value) -> dict:
    if isinstance(value, eqx.Module):
        return _fields(name, value)
    return {name: None if value is None else by_value(value)}


def fingerprint(gas, spec, saveat, sharding) -> str:
    """What a checkpoint must match to be continued, derived from the run's objects by value:
    the gas, every field of the bound system (`gamma`, `mu`, `B`, `omegas`, the angle model's
    and the profiles' fields, ...), the schedule's fields, the run specification's key and
    sizes, what is saved (`SaveAt.state`) and the shards (`Sharding.shards`,
    `exchange_every`; not the devices, which change no encounter)."""
    values = {
        "format": FORMAT,
        "counts": list(gas.counts),
        "P0": by_value(np.asarray(gas.P0, np.float64)),
        **_fields("schedule", spec.schedule),
        "key": by_value(spec.key),
        "n_realizations": spec.n_realizations,
        "n_steps": spec.n_steps,
        "save_every": spec.save_every,
        "dtype": jnp.dtype(spec.dtype).name,
        "save_state": saveat.state,
        "shards": sharding.shards,
        "exchange_every": sharding.exchange_every,
    }
    for field in dataclasses.fields(spec.system):
        value = getattr(spec.system, field.name)
        if isinstance(value, (jax.Array, np.ndarray)):  # its value (the dtype is `dtype`)
            value = np.asarray(value, np.float64)
        values.update(_entry(field.name, value))
    return json.dumps(values, sort_keys=True)


def _checksum(data: dict, stamp: str) -> str:
    digest = hashlib.sha256(stamp.encode())
    for name in sorted(data):
        array = np.ascontiguousarray(np.asarray(data[name]))
        if array.dtype.kind in "iu":  # as the file stores it (`write_h5`)
            array = array.astype(np.int64)
        digest.update(f"{name}|{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_checkpoint(path: Path, stamp: str, step: int, state: dict, pieces: dict, axis: int):
    """The engine's `state` and the saved series so far (`pieces`: name -> list of chunks,
    joined along the save `axis`), as of global step `step`."""
    from .._output.io import write_h5

    if not is_main_process():  # one writer; every process reads it on resume
        return
    data = {**state, "step": np.int64(step)}
    for name, values in pieces.items():
        if values:
            data[name] = np.concatenate(values, axis=axis)
    attrs = {"kind": "gas-checkpoint", "fingerprint": stamp, "checksum": _checksum(data, stamp)}
    write_h5(path, data, attrs=attrs, force=True)


class CheckpointMismatch(ValueError):
    """A checkpoint of another run; `differ` names the arguments of `simulate_gas` (or
    `sweep_gas`) in which the runs differ."""

    def __init__(self, path, differ: list[str]):
        self.path, self.differ = path, differ
        super().__init__(
            f"checkpoint={str(path)!r} belongs to a different run: it differs in "
            f"{', '.join(differ)}"
        )


def read_checkpoint(path: Path, stamp: str | None = None):
    """The data of a gas checkpoint; with `stamp` (a `fingerprint`), refused unless it is of
    that run (`CheckpointMismatch`). An unreadable file (truncated, not HDF5) is a
    `ValueError`."""
    from .._output.io import read_h5

    try:
        data, attrs = read_h5(path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"checkpoint={str(path)!r} is not a readable checkpoint ({error}); delete it to "
            "start the run again"
        ) from None
    if attrs.get("kind") != "gas-checkpoint":
        raise ValueError(f"checkpoint={str(path)!r} is not a gas checkpoint")
    saved = json.loads(attrs["fingerprint"])
    if saved.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint={str(path)!r} was written by another version of oile_jax (checkpoint "
            f"format {saved.get('format')}, this version reads {FORMAT}); delete it to start "
            "the run again"
        )
    flat = {k: v for k, v in _flat(data).items()}
    if attrs.get("checksum") != _checksum(flat, attrs["fingerprint"]):
        raise ValueError(
            f"checkpoint={str(path)!r} is damaged (its checksum does not match what it holds); "
            "delete it to start the run again"
        )
    if stamp is not None and attrs["fingerprint"] != stamp:
        wanted = json.loads(stamp)
        keys = set(saved) | set(wanted)
        raise CheckpointMismatch(path, sorted(k for k in keys if saved.get(k) != wanted.get(k)))
    return data


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for name, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{name}/"))
        else:
            out[f"{prefix}{name}"] = value
    return out
