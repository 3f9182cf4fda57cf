"""`sweep_gas`: one gas run at many values of gamma and mu, vmapped, the sweep axis sharded
across devices.

Every point runs `simulate_gas` with the same key (common random numbers: the points differ by
their parameters only, not by sampling noise), so point `k` makes the encounters of
`simulate_gas` with `System(gamma=gamma[k], mu=mu[k], ...)`, on any number of devices, and gives
its numbers to rounding (the vmapped program is another XLA program; XLA promises no fusion,
multiply-add contraction or reduction order across programs).
"""

import dataclasses
import operator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._physics.profiles import AbstractProfile
from .._physics.system import System
from .._sampling.options import Checkpoint, Sampling, SaveAt, Sharding
from .._sampling.schedule import AbstractSchedule
from .._support.checks import check_instance, concrete
from .._support.sharding import leading_axis_sharding, placement, shard, to_host
from . import dense
from .driver import GasSolution, drive, prepare, run_stamp
from .engine import AbstractGasEngine
from .kernel import GasKernel, Slots
from .model import Gas

_initial = eqx.filter_jit(eqx.filter_vmap(dense.initial, in_axes=(0, 0)))
_advance = eqx.filter_jit(
    eqx.filter_vmap(dense.advance, in_axes=(0, 0, None, None, None, None, None))
)
_in_gas_order = eqx.filter_jit(eqx.filter_vmap(dense.in_gas_order))


class SweptEngine(AbstractGasEngine):
    """A dense engine at `K` parameter points at once: its kernel `(K, ...)` (one point's
    kernel per index of the leading axis), slots `(K, R, ...)`, the sweep axis sharded across
    devices. It runs the dense engine's own functions, vmapped."""

    points: dense.DenseEngine
    sharding: object = eqx.field(static=True, default=None)

    @property
    def kernel(self) -> GasKernel:
        return self.points.kernel

    @property
    def gas(self) -> Gas:
        return self.points.gas

    @property
    def key(self):
        return self.points.key

    @property
    def dtype(self):
        return self.points.dtype

    @property
    def shape(self):
        K = jax.tree.leaves(self.kernel.system.gamma)[0].shape[0]
        return (K,) + self.points.shape

    @property
    def devices(self):
        return placement(self.sharding)

    def start(self):
        P = jnp.broadcast_to(self.gas.initial_isospins(self.dtype), self.shape)
        return _initial(self.kernel, shard(P, self.sharding))

    def advance(self, slots, step0: int, size: int, save_every: int, save_state: bool):
        step0 = jnp.asarray(step0, jnp.int32)
        slots, (obs, met, states) = _advance(
            self.kernel, slots, self.key, step0, size, save_every, save_state
        )
        return slots, obs, met, to_host(states) if save_state else None

    def state(self, slots) -> np.ndarray:
        return to_host(_in_gas_order(self.kernel, slots))

    def checkpoint(self, slots) -> dict:
        return self.points.checkpoint(slots)

    def restore(self, saved):
        P = jnp.asarray(saved["state"], dtype=self.dtype)
        return shard(Slots.restore(P, jnp.asarray(saved["index"], jnp.int32)), self.sharding)


def _points(gamma, mu) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mu, AbstractProfile):
        raise ValueError(
            "System.mu of a sweep must be numbers (the sweep's points); a coupling mu(t) "
            "is for simulate_gas"
        )
    values = [np.asarray(concrete(x) if concrete(x) is not None else np.nan) for x in (gamma, mu)]
    if any(np.isnan(v).any() for v in values):
        raise ValueError("gamma and mu of a sweep must be concrete numbers (not traced)")
    gamma, mu = (np.atleast_1d(v) for v in values)
    for v, name in ((gamma, "gamma"), (mu, "mu")):
        if v.ndim != 1:
            raise ValueError(
                f"gamma and mu must be scalars or 1-d arrays of one length, got {name} of shape "
                f"{v.shape}"
            )
        if v.size == 0:
            raise ValueError(f"{name} of a sweep is empty: give at least one point")
    if gamma.size != mu.size and 1 not in (gamma.size, mu.size):
        raise ValueError(
            f"gamma and mu of a sweep must have one length (or one of them a scalar), got "
            f"{gamma.size} gammas and {mu.size} mus"
        )
    return np.broadcast_arrays(gamma, mu)


def sweep_gas(
    gas: Gas,
    system: System,
    schedule: AbstractSchedule,
    sampling: Sampling,
    *,
    saveat: SaveAt = SaveAt(),
    checkpoint: Checkpoint | None = None,
    sharding: Sharding | None = None,
    progress: bool | None = None,
) -> list[GasSolution]:
    """`simulate_gas` at every point of a parameter sweep, in one vmapped call per chunk.

    **Arguments:** as `simulate_gas`, except:
    - `system`: its `gamma` and `mu` are 1-d arrays of the sweep's `K` points (or scalars,
      broadcast). Every point needs the same number of steps: give `sampling.n_steps`, or
      `t_max` with a stochastic schedule (its step `dt` is the same at every point; a
      deterministic round lasts `gamma / mu`).
    - `sharding`: `Sharding(devices=...)` shards the sweep axis across devices (`K` a multiple
      of their number); the sweep takes no `shards`.
    - `checkpoint`: one checkpoint file for the whole sweep.

    **Returns:** one `GasSolution` per point, with the numbers `simulate_gas` gives at that
    point with the same key.
    """
    check_instance(system, System, "system")
    sharding = Sharding() if sharding is None else sharding
    if not isinstance(sharding, Sharding) or sharding.shards is not None:
        raise ValueError(
            f"sharding of a sweep must be a Sharding(devices=...) without shards, got {sharding!r}"
        )
    gammas, mus = _points(system.gamma, system.mu)
    runs = [
        prepare(gas, dataclasses.replace(system, gamma=g, mu=m), schedule, sampling, saveat)
        for g, m in zip(gammas, mus, strict=True)
    ]
    steps = sorted({spec.n_steps for _, spec in runs})
    if len(steps) > 1:
        raise ValueError(
            f"t_max={sampling.t_max} gives {steps[0]} to {steps[-1]} steps across the sweep (a "
            "deterministic round lasts gamma / mu); pass n_steps for a sweep"
        )
    gas, spec = runs[0]
    K = len(runs)
    kernels = jax.tree.map(lambda *xs: jnp.stack(xs), *[GasKernel.make(g, s) for g, s in runs])
    placed = leading_axis_sharding(
        sharding.devices, K, "sweep", f"the sweep's {K} points", "the sweep's points"
    )
    kernels = jax.tree.map(lambda x: shard(x, placed), kernels)
    engine = SweptEngine(dense.DenseEngine.make(kernels, gas, spec), placed)
    stamp = None
    if checkpoint is not None:  # the run of every point: their gamma and mu stacked
        points = tuple(jnp.stack([getattr(s.system, x) for _, s in runs]) for x in ("gamma", "mu"))
        stamped = eqx.tree_at(lambda s: (s.system.gamma, s.system.mu), spec, points)
        stamp = run_stamp(gas, stamped, saveat, checkpoint, sharding)
    final_state, observables, encounters, state = drive(
        engine,
        spec,
        saveat,
        checkpoint,
        stamp,
        progress,
        label=f"sweep K={K} N={gas.n}",
    )
    velocities = engine.velocities()
    return [
        GasSolution(
            ts=point.times(),
            encounters=encounters[k],
            final_state=final_state[k],
            state=state[k] if saveat.state else None,
            velocities=velocities[k] if velocities is not None else None,
            counts=gas.counts,
            antineutrino=gas.antineutrino,
            observables=jax.tree.map(operator.itemgetter(k), observables),
        )
        for k, (_, point) in enumerate(runs)
    ]
