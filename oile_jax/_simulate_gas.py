"""`simulate_gas`: the host loop over chunks of a jitted `lax.scan`, with observables streamed
to the host, a progress bar, checkpoints and exact resume.

Randomness: realization `r` uses `key_r = fold_in(key, r)`, split once into a key for its
velocities (fixed-velocities model) and a key for its steps; step `s` uses
`fold_in(steps_key, s)`. A step's numbers depend only on `(key, r, s)`, so chunking and resuming
never change a result.
"""

import dataclasses
import json
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, PRNGKeyArray

from ._angles import AbstractAngleModel, FixedVelocities, angle_model
from ._checks import check_dtype, check_finite, check_vector, concrete
from ._gas import Gas, Observables, Slots, _GasModel, check_gas_state, realization_velocities
from ._progress import ProgressBar
from ._random import step_words
from ._resources import check_disk, check_memory, gas_bytes
from ._run import check_count, check_run, realization_keys
from ._schedule import AbstractSchedule
from ._sharded_gas import ShardedGasEngine, check_shards
from ._sharding import is_main_process, placement, realization_sharding, shard, to_host


@dataclasses.dataclass(frozen=True)
class GasSolution:
    """Result of `simulate_gas`, as NumPy arrays on the host.

    Shapes: `R` realizations, `S` saves (the initial state included), `G` groups, `N` neutrinos.
    - `ts` `(S,)`: save times (units of `1/mu` when `mu = 1`).
    - `group_mean`, `group_std` `(R, S, G, 3)`; `group_length`, `group_entropy` `(R, S, G)`:
      see `Observables`.
    - `total` `(R, S, 3)`: `sum_i P_i`; `lepton` `(R, S)`: `B . sum_i P_i`.
    - `encounters` `(R, S)`: cumulative number of encounters (pairs) since `t = 0`.
    - `state` `(R, S, N, 3)` if `save_state=True`, else None; `final_state` `(R, N, 3)`.
    - `velocities` `(R, N, 3)` for the fixed-velocities model, else None.
    - `counts`: neutrinos per group.
    """

    ts: np.ndarray
    group_mean: np.ndarray
    group_std: np.ndarray
    group_length: np.ndarray
    group_entropy: np.ndarray
    total: np.ndarray
    lepton: np.ndarray
    encounters: np.ndarray
    final_state: np.ndarray
    state: np.ndarray | None
    velocities: np.ndarray | None
    counts: tuple[int, ...]

    @property
    def fractions(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=float) / sum(self.counts)

    @property
    def entropy(self) -> np.ndarray:
        """Mean one-neutrino entanglement entropy over the whole gas, `(R, S)`."""
        return self.group_entropy @ self.fractions

    @property
    def encounters_per_neutrino(self) -> np.ndarray:
        return 2 * self.encounters / sum(self.counts)


_FIELDS = [f.name for f in dataclasses.fields(Observables)]


def _initial_unjitted(model: _GasModel, P):
    """The slots and initial observables of every realization, from `P` `(R, N, 3)`."""
    slots = jax.vmap(model.enter)(Slots.start(P))
    return slots, jax.vmap(model.observe)(slots)


_initial = eqx.filter_jit(_initial_unjitted)


def _advance_unjitted(
    model: _GasModel, slots: Slots, key, step0, n_intervals: int, save_every: int, save_state: bool
):
    """`n_intervals * save_every` steps from global step `step0` for every realization."""

    def one(slots, key_r):
        key_velocities, key_steps = jax.random.split(key_r)
        velocity_words = FixedVelocities.words(key_velocities)

        def interval(slots, k):
            def step(slots, s):
                # `s >= 0`: true, but not known to the compiler (see `_gas._materialize`).
                return model.step(slots, step_words(key_steps, s), velocity_words, s >= 0)

            steps = step0 + k * save_every + jnp.arange(save_every, dtype=jnp.int32)
            slots, met = jax.lax.scan(step, slots, steps)
            state = model.in_gas_order(slots) if save_state else None
            return slots, (model.observe(slots), jnp.sum(met), state)

        return jax.lax.scan(interval, slots, jnp.arange(n_intervals, dtype=jnp.int32))

    keys = realization_keys(key, slots.index.shape[0])
    return jax.vmap(one)(slots, keys)


_advance = eqx.filter_jit(_advance_unjitted)


def _in_gas_order_unjitted(model: _GasModel, slots: Slots):
    """Bloch vectors in gas order, `(R, N, 3)`, of every realization's slots."""
    return jax.vmap(model.in_gas_order)(slots)


_in_gas_order = eqx.filter_jit(_in_gas_order_unjitted)


_velocities = eqx.filter_jit(realization_velocities)


class _DenseEngine:
    """The gas of every realization in `Slots` (leading axis `R`) on one device, or with
    realizations sharded across devices: start, advance, restore and bring results to the host
    (in gas order)."""

    _initial = staticmethod(_initial)
    _advance = staticmethod(_advance)
    _in_gas_order = staticmethod(_in_gas_order)

    def __init__(self, model, gas, key, n_realizations, devices, dtype):
        self.model, self.gas, self.key, self.dtype = model, gas, key, dtype
        self.sharding = realization_sharding(devices, n_realizations)
        self.shape = (n_realizations, gas.n, 3)
        self.devices = placement(self.sharding)

    def start(self):
        P = shard(jnp.broadcast_to(self.gas.initial_state(self.dtype), self.shape), self.sharding)
        return self._initial(self.model, P)

    def advance(self, slots, step0: int, size: int, save_every: int, save_state: bool):
        slots, (obs, met, states) = self._advance(
            self.model,
            slots,
            self.key,
            jnp.asarray(step0, jnp.int32),  # traced: a new chunk must not recompile
            size,
            save_every,
            save_state,
        )
        return slots, obs, met, to_host(states) if save_state else None

    def state(self, slots) -> np.ndarray:
        return to_host(self._in_gas_order(self.model, slots))

    def velocities(self, slots):
        if not isinstance(self.model.angles, FixedVelocities):
            return None
        R, n = self.shape[-3], self.shape[-2]
        v = to_host(_velocities(self.model.angles, self.key, R, n, self.dtype))
        return np.broadcast_to(v, self.shape[:-3] + v.shape)

    def checkpoint(self, slots) -> dict:
        # The slot order is part of the state: resuming continues the same permutations. The
        # vectors are stored in the carried form (`_GasModel.enter`), so a resumed run goes on
        # with the very same numbers.
        return {"state": to_host(slots.vectors()), "index": to_host(slots.flat_index())}

    def restore(self, saved):
        P = jnp.asarray(saved["state"], dtype=self.dtype)
        slots = Slots.restore(P, jnp.asarray(saved["index"], dtype=jnp.int32))
        return shard(slots, self.sharding)


# 2: the dense gas in pairing order (`Slots`), velocities hashed from the index, the
# permutation's rounds reduced by multiply-shift (2026-11-24). 3: velocities from three mixer
# calls, 8 Feistel rounds from N = 65536 on, polynomial sine and cosine (2026-11-24). 4: the
# vectors stored in the carried form (`_GasModel.enter`: frame of B, half a step ahead).
_CHECKPOINT_FORMAT = 4


def _fingerprint(
    gas, model, key, n_realizations, n_steps, save_every, dtype, save_state, shards, exchange_every
) -> str:
    values = {
        # The random streams and the engine's state: a checkpoint of another format is refused.
        "format": _CHECKPOINT_FORMAT,
        "counts": list(gas.counts),
        "omegas": np.asarray(gas.omegas, dtype=float).tolist(),
        "P0": np.asarray(gas.P0, dtype=float).tolist(),
        "gamma": np.asarray(model.gamma, dtype=float).tolist(),
        "mu": np.asarray(model.mu, dtype=float).tolist(),
        "B": np.asarray(model.B, dtype=float).tolist(),
        "angles": repr(model.angles),
        "schedule": repr(model.schedule),
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "n_realizations": n_realizations,
        "n_steps": n_steps,
        "save_every": save_every,
        "dtype": jnp.dtype(dtype).name,
        "save_state": save_state,
        "shards": shards,
        "exchange_every": exchange_every,
    }
    return json.dumps(values, sort_keys=True)


def _write_checkpoint(path: Path, fingerprint: str, step: int, state: dict, pieces, axis: int):
    from ._io import write_h5

    if not is_main_process():  # one writer; every process reads it on resume
        return
    data = {**state, "step": np.int64(step)}
    for name, values in pieces.items():
        if values:
            data[name] = np.concatenate(values, axis=axis)
    write_h5(path, data, attrs={"kind": "gas-checkpoint", "fingerprint": fingerprint}, force=True)


class CheckpointMismatch(ValueError):
    """A checkpoint of another run; `differ` names the arguments of `simulate_gas` (or
    `sweep_gas`) in which the runs differ."""

    def __init__(self, path, differ: list[str]):
        self.path, self.differ = path, differ
        super().__init__(
            f"checkpoint={str(path)!r} belongs to a different run: it differs in "
            f"{', '.join(differ)}"
        )


def read_checkpoint(path: Path, fingerprint: str | None = None):
    """The data of a gas checkpoint; with `fingerprint`, refused unless it is of that run
    (`CheckpointMismatch`). An unreadable file (truncated, not HDF5) is a `ValueError`."""
    from ._io import read_h5

    try:
        data, attrs = read_h5(path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"checkpoint={str(path)!r} is not a readable checkpoint ({error}); delete it to "
            "start the run again"
        ) from None
    if attrs.get("kind") != "gas-checkpoint":
        raise ValueError(f"checkpoint={str(path)!r} is not a gas checkpoint")
    if fingerprint is not None and attrs["fingerprint"] != fingerprint:
        saved, wanted = json.loads(attrs["fingerprint"]), json.loads(fingerprint)
        raise CheckpointMismatch(path, sorted(k for k in wanted if saved.get(k) != wanted[k]))
    return data


def _check_fits(engine, n_saves: int, chunk_saves: int, save_state: bool, checkpoint):
    """Refuse, before compiling, a run whose arrays or checkpoint cannot fit."""
    *lead, n, _ = engine.shape
    copies, itemsize = int(np.prod(lead)), np.dtype(engine.dtype).itemsize
    device_bytes, host_bytes = gas_bytes(
        n=n,
        copies=copies,
        itemsize=itemsize,
        n_saves=n_saves,
        chunk_saves=chunk_saves,
        save_state=save_state,
        velocities=isinstance(engine.model.angles, FixedVelocities),
    )
    what = f"this gas run (N = {n} x {copies} realizations or points, {engine.dtype.name}"
    what += f", {n_saves} saved states)" if save_state else ")"
    advice = (
        "lower the number of realizations, N or (with save_state) the number of saves, or "
        "drop save_state"
    )
    check_memory(device_bytes, host_bytes, engine.devices, what, advice)
    if checkpoint is not None:
        # The checkpoint holds the state and the saved series; while it is replaced, the old
        # file and the new one exist together.
        state = copies * n * (3 * itemsize + 4)
        series = copies * n * 3 * itemsize * n_saves if save_state else 0
        check_disk(
            2 * (state + series), Path(checkpoint).parent, f"the checkpoint of {what}", advice
        )


def drive(
    engine,
    *,
    n_intervals: int,
    save_every: int,
    chunk_saves: int | None,
    save_state: bool,
    checkpoint,
    fingerprint,
    resume: bool,
    progress,
    label: str,
    axis: int,
):
    """The host loop shared by `simulate_gas` and `sweep_gas`: start `engine`, continue a
    checkpoint, advance chunk by chunk (observables to the host, a checkpoint after every chunk,
    a progress bar). `chunk_saves`: save intervals per chunk (None: all). `axis` is the save
    axis of the observables (1 for `(R, S, ...)`).

    Returns `(carry, observables, encounters, state)`: the engine's final carry, a dict of
    observable series (the initial save included), cumulative encounters, and the state series
    (`None` without `save_state`)."""
    chunk_saves = n_intervals if chunk_saves is None else check_count(chunk_saves, "chunk_saves")
    _check_fits(engine, n_intervals + 1, chunk_saves, save_state, checkpoint)
    n = engine.shape[-2]
    if (n // 2) * save_every >= 2**31:
        raise ValueError(
            f"save_every={save_every} steps per save is too many for N={n}: the encounters of "
            f"one save interval, up to N/2 x save_every = {(n // 2) * save_every}, are counted "
            "in int32 (< 2^31); save more often (a smaller save_every, or on the command line "
            "a larger run.n_saves)"
        )
    carry, obs0 = engine.start()
    path = Path(checkpoint) if checkpoint is not None else None
    # "saves_state": the saved states (save_state=True), apart from the engine's own "state".
    pieces: dict[str, list] = {name: [] for name in _FIELDS + ["encounters", "saves_state"]}
    done = 0
    if path is not None and path.exists():
        if not resume:
            raise FileExistsError(
                f"checkpoint={str(path)!r} exists; pass resume=True to continue it"
            )
        saved = read_checkpoint(path, fingerprint)
        done = int(saved["step"]) // save_every
        carry = engine.restore(saved)
        for name in pieces:
            if name in saved:
                pieces[name].append(np.asarray(saved[name]))

    if jax.process_count() > 1:
        # Every process has checked the checkpoint before process 0 may write one.
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("oile_jax simulate_gas start")
    bar = ProgressBar(n_intervals, label, enabled=progress)
    bar.update(done)
    while done < n_intervals:
        size = min(chunk_saves, n_intervals - done)
        carry, obs, met, states = engine.advance(
            carry, done * save_every, size, save_every, save_state
        )
        for name in _FIELDS:
            pieces[name].append(to_host(getattr(obs, name)))
        pieces["encounters"].append(to_host(met).astype(np.int64))
        if save_state:
            pieces["saves_state"].append(states)
        done += size
        if path is not None:
            _write_checkpoint(
                path, fingerprint, done * save_every, engine.checkpoint(carry), pieces, axis
            )
        bar.update(done)
    bar.close()

    def series(name, first):
        first = np.expand_dims(to_host(first), axis)
        return np.concatenate([first] + pieces[name], axis=axis) if pieces[name] else first

    out = {name: series(name, getattr(obs0, name)) for name in _FIELDS}
    n_met = series("encounters", np.zeros(obs0.lepton.shape, np.int64))
    state = None
    if save_state:
        saved = pieces["saves_state"][0]  # (..., saves, N, 3): the state's shape without `axis`
        shape = saved.shape[:axis] + saved.shape[axis + 1 :]
        initial = np.broadcast_to(np.asarray(engine.gas.initial_state(engine.dtype)), shape)
        state = series("saves_state", initial)
    return carry, out, np.cumsum(n_met, axis=axis), state


def prepare(
    gas, *, gamma, schedule, key, mu, B, angles, n_steps, t_max, save_every, n_realizations, dtype
):
    """Validated inputs of a gas run: `(gas, model, n_steps, save_every, n_realizations, key,
    dtype)`."""
    if not isinstance(gas, Gas):
        raise ValueError(f"gas must be a Gas(counts, omegas, P0), got {type(gas).__name__}")
    dtype = check_dtype(dtype)
    angles = angle_model(angles)
    P0 = check_gas_state(check_vector(gas.P0, "P0", dtype), "P0")
    omegas = check_finite(
        check_vector(gas.omegas[:, None], "omegas", dtype, size=1)[:, 0], "omegas"
    )
    gas = Gas(gas.counts, omegas, P0)
    schedule, gamma, mu, B, n_steps, save_every, n_realizations, key = check_run(
        schedule=schedule,
        gamma=gamma,
        mu=mu,
        B=B,
        n_steps=n_steps,
        t_max=t_max,
        save_every=save_every,
        n_realizations=n_realizations,
        key=key,
        dtype=dtype,
    )
    model = _GasModel(gas.counts, omegas, gamma, mu, B, angles, schedule)
    return gas, model, n_steps, save_every, n_realizations, key, dtype


def simulate_gas(
    gas: Gas,
    *,
    gamma: ArrayLike,
    schedule: AbstractSchedule,
    key: PRNGKeyArray,
    mu: ArrayLike = 1.0,
    B: ArrayLike = (0.0, 0.0, -1.0),
    angles: "str | AbstractAngleModel" = "isotropic",
    n_steps: int | None = None,
    t_max: float | None = None,
    save_every: int = 1,
    n_realizations: int = 1,
    dtype=None,
    save_state: bool = False,
    chunk_saves: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | None = None,
    devices=None,
    shards: int | None = None,
    exchange_every: int = 1,
) -> GasSolution:
    """Simulate an OILE gas: `n_realizations` independent realizations, vmapped.

    **Arguments:**
    - `gas`: a `Gas` (group counts, vacuum frequencies, initial Bloch vectors).
    - `gamma` (> 0), `mu` (> 0): impact parameter and coupling. `B`: unit vacuum direction in
      the basis the states are written in (default mass basis `(0, 0, -1)`; see `mixing_vector`).
    - `schedule`: `Stochastic(dt)` or `Deterministic(vacuum="split" | "inside")`.
    - `angles`: `"isotropic"`, `"fixed-velocities"`, `"fixed-angle"` (or an instance).
    - `n_steps` or `t_max` (exactly one), `save_every`: run length and save interval in steps.
    - `dtype`: `jnp.float32` (default) or `jnp.float64` (needs `jax_enable_x64`).
    - `save_state`: also return the full state at every save (memory: `R S N 3` floats).
    - `chunk_saves`: save intervals per jitted chunk (default: all; smaller chunks give a live
      progress bar and more frequent checkpoints at no cost in results).
    - `checkpoint`: an HDF5 path written (atomically) after every chunk; with `resume=True` an
      existing checkpoint of the same run is continued, giving exactly the numbers of an
      uninterrupted run. An existing checkpoint is never overwritten without `resume=True`.
    - `progress`: draw a progress bar on stderr (default: when stderr is a terminal).
    - `devices`: shard the realizations across devices (`"all"`, a count, or a list of
      `jax.Device`; `n_realizations` a multiple of their number). The encounters are those of
      an unsharded run and the numbers the same to rounding. With `jax.distributed.initialize()`
      on every host, `"all"` spans the hosts.
    - `shards`: split each realization's gas into this many shards along the neutrino axis
      (for a gas larger than one device): pairs form within shards, and every
      `exchange_every` steps the shards exchange random equal parts (see `_sharded_gas` for
      the pairing statistics). `devices` then places the shards (`shards` a multiple of their
      number), and any device count makes the same encounters (numbers equal to rounding).
      N must be a multiple of `shards^2` with `N / shards` even; `save_every` a multiple of
      `exchange_every`.

    `gamma`, `mu`, `B`, `dt`, the gas's `omegas` and `P0` are traced: changing them does not
    recompile; `counts`, `n_realizations`, `save_every`, chunk sizes and options are static.
    """
    gas, model, n_steps, save_every, n_realizations, key, dtype = prepare(
        gas,
        gamma=gamma,
        schedule=schedule,
        key=key,
        mu=mu,
        B=B,
        angles=angles,
        n_steps=n_steps,
        t_max=t_max,
        save_every=save_every,
        n_realizations=n_realizations,
        dtype=dtype,
    )
    omegas, P0, gamma, mu = model.omegas, gas.P0, model.gamma, model.mu
    n_intervals = n_steps // save_every

    if shards is None:
        engine = _DenseEngine(model, gas, key, n_realizations, devices, dtype)
    else:
        shards, exchange_every = check_shards(shards, gas.n, exchange_every, save_every)
        engine = ShardedGasEngine(
            model, gas, key, n_realizations, shards, exchange_every, devices, dtype
        )
    fingerprint = None
    if checkpoint is not None:
        if any(concrete(x) is None for x in (gamma, mu, omegas, P0)):
            raise ValueError("checkpoint needs concrete parameters (not under jit or grad)")
        fingerprint = _fingerprint(
            gas,
            model,
            key,
            n_realizations,
            n_steps,
            save_every,
            dtype,
            save_state,
            shards,
            exchange_every if shards is not None else None,
        )
    carry, out, encounters, state = drive(
        engine,
        n_intervals=n_intervals,
        save_every=save_every,
        chunk_saves=chunk_saves,
        save_state=save_state,
        checkpoint=checkpoint,
        fingerprint=fingerprint,
        resume=resume,
        progress=progress,
        label=f"gas N={gas.n} R={n_realizations}",
        axis=1,
    )
    tau = (
        float(np.asarray(model.schedule.step_length(gamma, mu)))
        if concrete(gamma) is not None
        else np.nan
    )
    return GasSolution(
        ts=(tau * save_every * np.arange(n_intervals + 1)).astype(dtype),
        encounters=encounters,
        final_state=engine.state(carry),
        state=state,
        velocities=engine.velocities(carry),
        counts=gas.counts,
        **out,
    )
