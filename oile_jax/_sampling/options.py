"""The run options every driver takes, each an object documented once (in the manner of
diffrax's `SaveAt`): how a run samples (`Sampling`: key, length, ensemble, dtype), what it saves
(`SaveAt`), where it checkpoints (`Checkpoint`) and how it is spread over devices (`Sharding`).

Each validates itself where it is made, and its errors name the argument. What depends on the
physics (a run length in time needs the step length; the shards need N) is checked where the
run is built (`spec.make_spec`, `_gas.sharded.check_shards`)."""

import os

import equinox as eqx
import numpy as np
from jaxtyping import PRNGKeyArray

from .._support.checks import check_dtype


def check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Sampling(eqx.Module):
    """How a run samples: its random key, its length, its ensemble and its float dtype.

    - `key`: a PRNG key (`jax.random.key(seed)`). Realization `r` uses `fold_in(key, r)`, and
      step `s` of it `fold_in` of that with `s`: a step's numbers depend only on `(key, r, s)`,
      so chunking, sharding and resuming never change a result.
    - `n_steps` or `t_max` (exactly one; the drivers that must know the length before the
      parameters, `evolve_gas`, take `n_steps` only): the length of the run in steps, or in
      time (rounded to a whole number of save intervals; the solution's `ts` holds the actual
      times).
    - `n_realizations`: independent realizations, run vmapped.
    - `dtype`: `jnp.float32` or `jnp.float64` (needs `jax_enable_x64`); None: the driver's
      default (float32 for a gas; the dtype of `P0` for the foreground).

    The key is traced; the length, the ensemble size and the dtype are static."""

    key: PRNGKeyArray
    n_steps: int | None = eqx.field(static=True, default=None)
    t_max: float | None = None
    n_realizations: int = eqx.field(static=True, default=1)
    dtype: object = eqx.field(static=True, default=None)

    def __check_init__(self):
        if (self.n_steps is None) == (self.t_max is None):
            raise ValueError("give exactly one of n_steps and t_max")
        if self.n_steps is not None:
            check_count(self.n_steps, "Sampling.n_steps")
        check_count(self.n_realizations, "Sampling.n_realizations")
        if self.dtype is not None:
            check_dtype(self.dtype)


class SaveAt(eqx.Module):
    """What a run saves, and how often.

    - `every`: steps between saved times; the initial state is saved too (None, for
      `evolve_gas` only: the initial and the final state).
    - `state`: also save every particle's state at every saved time (memory: `R S N D` floats),
      not only the observables.
    - `chunk`: save intervals per jitted chunk (None: the whole run at once). Smaller chunks
      give a live progress bar and more frequent checkpoints, and the same numbers."""

    every: int | None = eqx.field(static=True, default=1)
    state: bool = eqx.field(static=True, default=False)
    chunk: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.every is not None:
            check_count(self.every, "SaveAt.every")
        if not isinstance(self.state, (bool, np.bool_)):
            raise ValueError(f"SaveAt.state must be True or False, got {self.state!r}")
        if self.chunk is not None:
            check_count(self.chunk, "SaveAt.chunk")


class Checkpoint(eqx.Module):
    """Where a run checkpoints: an HDF5 file written (atomically) after every chunk
    (`SaveAt.chunk`).

    - `path`: the file. An existing one is never overwritten.
    - `resume`: continue the checkpoint at `path`, which must hold the same run (the values
      that shape it, compared by value; a mismatch names what differs), giving exactly the
      numbers of an uninterrupted run. Without it, an existing file is refused."""

    path: str = eqx.field(static=True)
    resume: bool = eqx.field(static=True, default=False)

    def __init__(self, path: "str | os.PathLike", resume: bool = False):
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"Checkpoint.path must be a file path, got {path!r}")
        self.path = os.fspath(path)
        self.resume = resume

    def __check_init__(self):
        if not isinstance(self.resume, (bool, np.bool_)):
            raise ValueError(f"Checkpoint.resume must be True or False, got {self.resume!r}")


class Sharding(eqx.Module):
    """How a gas run is spread over devices.

    - `devices`: shard the realizations (or a sweep's points) across devices: `"all"`, a count,
      or a list of `jax.Device` (their number dividing `n_realizations`). The encounters are
      those of an unsharded run and the numbers the same to rounding. With
      `jax.distributed.initialize()` on every host, `"all"` spans the hosts.
    - `shards`: split each realization's gas into this many shards along the neutrino axis
      (for a gas larger than one device): pairs form within shards, and every
      `exchange_every` steps the shards exchange random equal parts (`_gas/sharded.py` gives
      the pairing statistics). `devices` then places the shards (`shards` a multiple of their
      number), and any device count makes the same encounters. N must be a multiple of
      `shards^2` with `N / shards` even, and `SaveAt.every` a multiple of `exchange_every`."""

    devices: object = eqx.field(static=True, default=None)
    shards: int | None = eqx.field(static=True, default=None)
    exchange_every: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if self.shards is not None:
            check_count(self.shards, "Sharding.shards")
        check_count(self.exchange_every, "Sharding.exchange_every")
        if self.shards is None and self.exchange_every != 1:
            raise ValueError(
                "Sharding.exchange_every is the exchange between shards: give "
                "Sharding.shards too (or leave exchange_every at 1)"
            )
