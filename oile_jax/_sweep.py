"""`sweep_gas`: one gas run at many values of gamma and mu, vmapped, the sweep axis sharded
across devices.

Every point runs `simulate_gas` with the same key (common random numbers: the points differ by
their parameters only, not by sampling noise), so point `k` makes the encounters of
`simulate_gas(gamma=gamma[k], mu=mu[k], ...)`, on any number of devices, and gives its numbers
to rounding (the vmapped program is another XLA program; XLA promises no fusion, multiply-add
contraction or reduction order across programs).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import concrete
from ._sharding import leading_axis_sharding, placement, shard
from ._simulate_gas import (
    _FIELDS,
    GasSolution,
    _advance_unjitted,
    _DenseEngine,
    _fingerprint,
    _in_gas_order_unjitted,
    _initial_unjitted,
    drive,
    prepare,
)


class _SweepEngine(_DenseEngine):
    """`_DenseEngine` with a leading sweep axis: models `(K, ...)`, slots `(K, R, ...)`, the
    sweep axis sharded across devices."""

    _initial = staticmethod(eqx.filter_jit(eqx.filter_vmap(_initial_unjitted, in_axes=(0, 0))))
    _advance = staticmethod(
        eqx.filter_jit(
            eqx.filter_vmap(_advance_unjitted, in_axes=(0, 0, None, None, None, None, None))
        )
    )
    _in_gas_order = staticmethod(eqx.filter_jit(eqx.filter_vmap(_in_gas_order_unjitted)))

    def __init__(self, models, gas, key, n_points, n_realizations, devices, dtype):
        self.gas, self.key, self.dtype = gas, key, dtype
        self.sharding = leading_axis_sharding(
            devices, n_points, "sweep", f"the sweep's {n_points} points", "the sweep's points"
        )
        self.model = jax.tree.map(lambda x: shard(x, self.sharding), models)
        self.shape = (n_points, n_realizations, gas.n, 3)
        self.devices = placement(self.sharding)


def _points(gamma, mu) -> tuple[np.ndarray, np.ndarray]:
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
    gas,
    *,
    gamma,
    schedule,
    key,
    mu=1.0,
    B=(0.0, 0.0, -1.0),
    angles="isotropic",
    n_steps: int | None = None,
    t_max: float | None = None,
    save_every: int = 1,
    n_realizations: int = 1,
    dtype=None,
    save_state: bool = False,
    chunk_saves: int | None = None,
    checkpoint=None,
    resume: bool = False,
    progress: bool | None = None,
    devices=None,
) -> list[GasSolution]:
    """`simulate_gas` at every point of a parameter sweep, in one vmapped call per chunk.

    **Arguments:** as `simulate_gas`, except `gamma` and `mu`: 1-d arrays of the sweep's `K`
    points (or scalars, broadcast). Every point needs the same number of steps: give `n_steps`,
    or `t_max` with a stochastic schedule (its step `dt` is the same at every point; a
    deterministic round lasts `gamma / mu`). `devices`: shard the sweep axis across devices
    (`"all"`, a count or a list; `K` a multiple of their number). `checkpoint`, `resume`: as in
    `simulate_gas` (one checkpoint file for the whole sweep).

    **Returns:** one `GasSolution` per point, with the numbers `simulate_gas` gives at that
    point with the same key.
    """
    gammas, mus = _points(gamma, mu)
    runs = [
        prepare(
            gas,
            gamma=g,
            schedule=schedule,
            key=key,
            mu=m,
            B=B,
            angles=angles,
            n_steps=n_steps,
            t_max=t_max,
            save_every=save_every,
            n_realizations=n_realizations,
            dtype=dtype,
        )
        for g, m in zip(gammas, mus, strict=True)
    ]
    steps = sorted({run[2] for run in runs})
    if len(steps) > 1:
        raise ValueError(
            f"t_max={t_max} gives {steps[0]} to {steps[-1]} steps across the sweep (a "
            "deterministic round lasts gamma / mu); pass n_steps for a sweep"
        )
    gas, _, n_steps, save_every, n_realizations, key, dtype = runs[0]
    models = jax.tree.map(lambda *xs: jnp.stack(xs), *[run[1] for run in runs])
    K, n_intervals = len(runs), n_steps // save_every
    engine = _SweepEngine(models, gas, key, K, n_realizations, devices, dtype)
    fingerprint = None
    if checkpoint is not None:
        fingerprint = _fingerprint(
            gas, models, key, n_realizations, n_steps, save_every, dtype, save_state, None, None
        )
    carry, series, encounters, state = drive(
        engine,
        n_intervals=n_intervals,
        save_every=save_every,
        chunk_saves=chunk_saves,
        save_state=save_state,
        checkpoint=checkpoint,
        fingerprint=fingerprint,
        resume=resume,
        progress=progress,
        label=f"sweep K={K} N={gas.n}",
        axis=2,
    )
    final_state, velocities = engine.state(carry), engine.velocities(carry)
    solutions = []
    for k, run in enumerate(runs):
        tau = float(np.asarray(run[1].schedule.step_length(run[1].gamma, run[1].mu)))
        solutions.append(
            GasSolution(
                ts=(tau * save_every * np.arange(n_intervals + 1)).astype(dtype),
                encounters=encounters[k],
                final_state=final_state[k],
                state=state[k] if save_state else None,
                velocities=velocities[k] if velocities is not None else None,
                counts=gas.counts,
                **{name: series[name][k] for name in _FIELDS},
            )
        )
    return solutions
