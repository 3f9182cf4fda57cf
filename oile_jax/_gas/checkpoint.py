"""Gas checkpoints: one format for every engine (`engine.AbstractGasEngine`), one fingerprint
of the run, written atomically after every chunk and read back on resume."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._sharding import is_main_process

# The random streams and the engine's state: a checkpoint of another format is refused. The
# history of the format is in CHANGELOG.md.
FORMAT = 6


def fingerprint(gas, spec, options: dict) -> str:
    """What a checkpoint must match to be continued: the gas, the run specification and the
    engine's options (`shards`, `exchange_every`, `save_state`)."""
    values = {
        "format": FORMAT,
        "counts": list(gas.counts),
        "omegas": np.asarray(gas.omegas, dtype=float).tolist(),
        "P0": np.asarray(gas.P0, dtype=float).tolist(),
        "gamma": np.asarray(spec.gamma, dtype=float).tolist(),
        "mu": np.asarray(spec.mu, dtype=float).tolist(),
        "B": np.asarray(spec.B, dtype=float).tolist(),
        "angles": repr(spec.angles),
        "schedule": repr(spec.schedule),
        "key": np.asarray(jax.random.key_data(spec.key)).tolist(),
        "n_realizations": spec.n_realizations,
        "n_steps": spec.n_steps,
        "save_every": spec.save_every,
        "dtype": jnp.dtype(spec.dtype).name,
        "save_state": False,
        "shards": None,
        "exchange_every": None,
        **options,
    }
    # Options added since format 5, recorded only where they differ from their defaults, so
    # that a checkpoint of a neutrino gas in vacuum written before them still resumes.
    if any(gas.antineutrino):
        values["antineutrino"] = list(gas.antineutrino)
    if spec.ordering != "normal":
        values["ordering"] = spec.ordering
    for name in ("matter", "density"):
        if getattr(spec, name) is not None:
            values[name] = _describe(getattr(spec, name))
    if spec.matter is not None:
        values["L"] = np.asarray(spec.L, dtype=float).tolist()
    return json.dumps(values, sort_keys=True)


def _describe(profile) -> str:
    leaves = [np.asarray(x, dtype=float).tolist() for x in jax.tree.leaves(profile)]
    return f"{type(profile).__name__}{leaves}"


def write_checkpoint(path: Path, stamp: str, step: int, state: dict, pieces: dict, axis: int):
    """The engine's `state` and the saved series so far (`pieces`: name -> list of chunks,
    joined along the save `axis`), as of global step `step`."""
    from .._io import write_h5

    if not is_main_process():  # one writer; every process reads it on resume
        return
    data = {**state, "step": np.int64(step)}
    for name, values in pieces.items():
        if values:
            data[name] = np.concatenate(values, axis=axis)
    write_h5(path, data, attrs={"kind": "gas-checkpoint", "fingerprint": stamp}, force=True)


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
    from .._io import read_h5

    try:
        data, attrs = read_h5(path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"checkpoint={str(path)!r} is not a readable checkpoint ({error}); delete it to "
            "start the run again"
        ) from None
    if attrs.get("kind") != "gas-checkpoint":
        raise ValueError(f"checkpoint={str(path)!r} is not a gas checkpoint")
    if stamp is not None and attrs["fingerprint"] != stamp:
        saved, wanted = json.loads(attrs["fingerprint"]), json.loads(stamp)
        raise CheckpointMismatch(path, sorted(k for k in wanted if saved.get(k) != wanted[k]))
    return data
