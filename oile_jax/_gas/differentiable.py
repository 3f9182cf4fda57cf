"""`evolve_gas`: a gas run as one pure, jittable function that `jax.grad`, `jax.jvp`,
`jax.jacfwd` and `jax.vmap` go through (physics.md section 13).

It runs the dense engine's own functions (`dense.initial`, `dense.advance`) without the host
loop: the same kernel and the same random streams as `simulate_gas`, so at the same options it
makes the same encounters and gives the same numbers to rounding (one XLA program against
another: no bit-identity is promised). The scans are checkpointed (`dense.remat_scan`), so
reverse mode keeps about `2 (sqrt(saves) + sqrt(save_every))` steps, not every one.

Gradients are pathwise: the encounter sequence (permutations, meeting decisions, encounter
variables `x`, velocities) is fixed by the key, and the derivative is that of the final state
along it. That is the exact derivative of the run for every parameter the sequence does not
depend on: the initial states `P0`, the frequencies `omegas`, `B` (the mixing angles), `L` and
the matter profile's numbers, and, with `Deterministic` rounds at a fixed number of steps,
`gamma` and `mu` (the encounter strength `gamma x` and the round length `gamma / mu`). With
`Stochastic(dt)` a pair meets when a uniform draw falls below `p = mu(t) dt / gamma`: the
expected result depends on `gamma`, `mu`, `dt` and the density profile through `p` as well,
a dependence a pathwise derivative misses (it is zero almost everywhere), so those gradients
are refused with an error rather than returned wrong.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._physics.system import System
from .._sampling.options import Sampling, SaveAt
from .._sampling.schedule import AbstractSchedule
from .._support.resources import check_run_fits, gas_bytes
from . import dense
from .driver import prepare
from .kernel import GasKernel
from .model import Gas
from .observe import Observables, series


class GasTrajectory(eqx.Module):
    """Result of `evolve_gas`, as JAX arrays (so it can be returned from `jit` and
    differentiated). The fields of `GasSolution`, with its shapes (`R` realizations, `S` saves
    including `t = 0`, `G` groups, `N` neutrinos, `D` components):

    - `ts` `(S,)`; `observables`, whose fields are also attributes: `group_mean`, `group_std`
      `(R, S, G, D)`; `group_length`, `group_entropy` `(R, S, G)`; `total` `(R, S, D)`;
      `lepton` `(R, S)`; `encounters` `(R, S)` (cumulative); `final_state` `(R, N, D)`;
      `state` `(R, S, N, D)` with `SaveAt(state=True)`, else None.

    `group_mean`, `total`, `lepton` and the states are smooth functions of the parameters.
    `group_std` (a square root, singular where a group has no spread, as at `t = 0`),
    `group_length` and `group_entropy` (singular at pure states) are returned for
    completeness; differentiate them only where the spread is nonzero and the states mixed.
    """

    ts: Array
    observables: Observables
    encounters: Array
    final_state: Array
    state: Array | None

    def __getattr__(self, name: str):  # the series of every field of `Observables`
        return series(self, name)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _refused(x, why: str):
    return x


@_refused.defjvp
def _refused_jvp(why, primals, tangents):
    raise ValueError(why)


def _refuse(tree, why: str):
    """`tree` with every float leaf refusing differentiation (a `ValueError(why)` when a
    derivative is taken through it)."""
    return jax.tree.map(lambda x: _refused(x, why) if eqx.is_inexact_array(x) else x, tree)


def evolve_gas(
    gas: Gas,
    system: System,
    schedule: AbstractSchedule,
    sampling: Sampling,
    *,
    saveat: SaveAt = SaveAt(every=None),
    remat: bool = True,
) -> GasTrajectory:
    """Run a gas as one pure function: `simulate_gas`'s physics, options and random streams
    (dense engine), with no host loop, checkpoint or progress bar, so that it can be jitted,
    vmapped and differentiated (pathwise, along the encounter sequence the key fixes).

    **Arguments:** as `simulate_gas`, except:
    - `sampling` gives `n_steps` (`t_max` is not taken: a run length computed from `gamma`
      would move with it).
    - `saveat`: default `SaveAt(every=None)`, the initial and the final state only
      (`SaveAt.chunk` does not apply: the run is one program).
    - `remat`: checkpoint the scans in blocks, so that reverse mode stores about
      `2 (sqrt(n_steps / save_every) + sqrt(save_every))` steps (default True; False keeps
      every step, for one forward pass less). A kept step is its input state, its
      permutation and its pairs' encounter variables (about 1.5 gas states in float64).

    Gradients (`jax.grad`, `jax.jvp`, `jax.jacfwd`) are exact for `P0`, `omegas`, `B`, `L`,
    `matter` and, with `Deterministic` rounds, `gamma` and `mu`. With `Stochastic(dt)`,
    differentiating through `gamma`, `mu` (or its profile) or `dt` raises a `ValueError`: the
    meeting probability `mu dt / gamma` moves the expected result in a way a pathwise
    derivative cannot see (physics.md section 13).

    Returns a `GasTrajectory`.
    """
    if isinstance(sampling, Sampling) and sampling.n_steps is None:
        raise ValueError(
            "evolve_gas takes Sampling(n_steps=...), not t_max (a run length computed from "
            "gamma would move with it)"
        )
    if isinstance(saveat, SaveAt) and saveat.chunk is not None:
        raise ValueError("evolve_gas runs as one program: SaveAt.chunk does not apply")
    gas, spec = prepare(gas, system, schedule, sampling, saveat)
    save_every, save_state = spec.save_every, saveat.state
    if spec.schedule.meets_at_random:
        why = (
            "evolve_gas: no pathwise gradient with respect to {} with a Stochastic(dt) "
            "schedule: whether a pair meets is decided by a draw against mu dt / gamma, and "
            "the derivative along a fixed draw misses that dependence (zero almost everywhere)."
            " Differentiate with respect to P0, omegas, B, L or matter, or use Deterministic "
            "rounds for gamma and mu"
        )
        system = spec.system
        spec = eqx.tree_at(
            lambda s: (s.system.gamma, s.system.mu, s.schedule, s.system.density),
            spec,
            (
                _refuse(system.gamma, why.format("gamma")),
                _refuse(system.mu, why.format("mu")),
                _refuse(spec.schedule, why.format("dt")),
                _refuse(system.density, why.format("the density profile of mu")),
            ),
            is_leaf=lambda x: x is None,
        )
    opacities = spec.system.opacities
    if opacities is not None and opacities.scatters:
        why = (
            "evolve_gas: no pathwise gradient with respect to {} with Reemission scattering: "
            "whether two neutrinos exchange directions is decided by a draw against the "
            "scattering rate, and the derivative along a fixed draw misses that dependence "
            "(zero almost everywhere)"
        )
        spec = eqx.tree_at(
            lambda s: (s.system.opacities.scattering, s.system.opacities.scale),
            spec,
            (
                _refuse(opacities.scattering, why.format("the opacities' scattering")),
                _refuse(opacities.scale, why.format("the opacities' scale")),
            ),
            is_leaf=lambda x: x is None,
        )
    kernel = GasKernel.make(gas, spec)
    R, D = spec.n_realizations, gas.P0.shape[-1]
    device_bytes, host_bytes = gas_bytes(
        n=gas.n,
        copies=R,
        itemsize=np.dtype(spec.dtype).itemsize,
        n_saves=spec.n_saves,
        chunk_saves=spec.n_saves,
        save_state=save_state,
        velocities=kernel.angles.keeps_velocities,
        components=D,
    )
    check_run_fits(
        device_bytes + host_bytes,  # one program: the saved states stay on the device
        0,
        f"evolve_gas (N = {gas.n} x {R} realizations, {np.dtype(spec.dtype).name}"
        + (f", {spec.n_saves} saved states)" if save_state else ")"),
        "lower N, n_realizations or (with save_state) the number of saves; a gradient needs "
        "more (about 1.5 gas states per step kept)",
    )
    P = jnp.broadcast_to(gas.initial_isospins(spec.dtype), (R, gas.n, D))
    slots, obs0 = dense.initial(kernel, P)
    n_intervals = spec.n_saves - 1
    step0 = jnp.zeros((), jnp.int32)
    slots, (obs, met, states) = dense.advance(
        kernel, slots, spec.key, step0, n_intervals, save_every, save_state,
        remat=remat, sequential=True,
    )  # fmt: skip
    series = lambda first, rest: jnp.concatenate([first[:, None], rest], axis=1)
    out = jax.tree.map(series, obs0, obs)
    zero = jnp.zeros((R, 1), met.dtype)
    encounters = jnp.cumsum(jnp.concatenate([zero, met], axis=1), axis=1)
    state = None
    if save_state:
        state = gas.physical(series(P, states))
    tau = spec.step_length().astype(spec.dtype)
    return GasTrajectory(
        ts=tau * save_every * jnp.arange(spec.n_saves, dtype=spec.dtype),
        observables=eqx.tree_at(lambda o: o.group_mean, out, gas.physical(out.group_mean)),
        encounters=encounters,
        final_state=gas.physical(dense.in_gas_order(kernel, slots)),
        state=state,
    )
