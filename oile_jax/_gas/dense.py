"""The dense engine: every realization's gas in `Slots` (leading axis `R`) on one device, or
with the realizations sharded across devices."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._sampling.random import realization_keys, realization_streams, step_words
from .._support.programs import stored_program
from .._support.sharding import placement, realization_sharding, shard, to_host
from .engine import AbstractGasEngine
from .kernel import GasKernel, Slots
from .model import Gas


def initial(kernel: GasKernel, P):
    """The slots and initial observables of every realization, from `P` `(R, N, D)`."""
    slots = jax.vmap(kernel.enter)(Slots.start(P))
    return slots, jax.vmap(kernel.observe_sums)(slots)


def advance(
    kernel: GasKernel,
    slots: Slots,
    key,
    step0,
    n_intervals: int,
    save_every: int,
    save_state: bool,
    remat: bool = False,
    sequential: bool = False,
):
    """`n_intervals * save_every` steps from global step `step0` for every realization:
    `(slots, (observables, encounters, states))` per save interval. `remat`: both scans (over
    save intervals, over the steps of one) checkpointed in blocks (`remat_scan`), so that
    reverse-mode differentiation keeps about `2 (sqrt(n_intervals) + sqrt(save_every))`
    steps instead of every one; a kept step is its input, permutation and encounter variables
    (`GasKernel.differentiable_step`). `sequential`: the realizations one after another
    (`lax.map`) instead of vmapped, so that each gather (and its transpose) is one-dimensional
    (XLA's batched gathers and scatters are several times slower on the CPU)."""
    scan = remat_scan if remat else jax.lax.scan

    def one(slots, key_r):
        velocity_key, steps_key = realization_streams(key_r)
        velocity_words = kernel.angles.velocity_words(velocity_key)

        def interval(slots, k):
            def step(slots, s):
                # `s >= 0`: true, but not known to the compiler (see `kernel.materialize`).
                live = s >= 0
                slots, _, met = kernel.differentiable_step(
                    slots, step_words(steps_key, s), velocity_words, live, s
                )
                return slots, met

            steps = step0 + k * save_every + jnp.arange(save_every, dtype=jnp.int32)
            slots, met = scan(step, slots, steps)
            state = kernel.in_gas_order(slots) if save_state else None
            return slots, (kernel.observe_sums(slots), jnp.sum(met), state)

        return scan(interval, slots, jnp.arange(n_intervals, dtype=jnp.int32))

    keys = realization_keys(key, slots.index.shape[0])
    if not sequential:
        return jax.vmap(one)(slots, keys)
    if keys.shape[0] == 1:
        out = one(jax.tree.map(lambda x: x[0], slots), keys[0])
        return jax.tree.map(lambda x: x[None], out)
    # Each realization under `jax.checkpoint`: reverse mode through the map keeps the
    # realizations' inputs only (the blocks' states inside one would otherwise be kept for all).
    return jax.lax.map(jax.checkpoint(lambda args: one(*args)), (slots, keys))


def remat_scan(f, carry, xs):
    """`jax.lax.scan(f, carry, xs)` (`xs` an array) with its steps in blocks of
    `b = ceil(sqrt(L))`, each block's scan under `jax.checkpoint`: reverse mode then stores the
    carry at each block's start and, while it runs back through one block, that block's steps,
    about `2 sqrt(L)` carries instead of `L`, for one more forward pass. Short scans (`L < 4`)
    are plain."""
    n = xs.shape[0]
    if n < 4:
        return jax.lax.scan(f, carry, xs)
    b = math.isqrt(n - 1) + 1
    q, r = divmod(n, b)
    block = jax.checkpoint(lambda c, x: jax.lax.scan(f, c, x))
    carry, ys = jax.lax.scan(block, carry, xs[: q * b].reshape((q, b) + xs.shape[1:]))
    ys = jax.tree.map(lambda y: y.reshape((q * b,) + y.shape[2:]), ys)
    if r:
        carry, tail = block(carry, xs[q * b :])
        ys = jax.tree.map(lambda y, t: jnp.concatenate([y, t]), ys, tail)
    return carry, ys


def in_gas_order(kernel: GasKernel, slots: Slots):
    """Bloch vectors in gas order, `(R, N, D)`, of every realization's slots."""
    return jax.vmap(kernel.in_gas_order)(slots)


_initial, _advance, _in_gas_order = (stored_program(f) for f in (initial, advance, in_gas_order))


class DenseEngine(AbstractGasEngine):
    """All of a realization's neutrinos pair with each other (uniform random matchings); the
    realizations, if `devices` is given, split across devices."""

    kernel: GasKernel
    gas: Gas
    key: PRNGKeyArray
    dtype: np.dtype = eqx.field(static=True)
    n_realizations: int = eqx.field(static=True)
    sharding: object = eqx.field(static=True, default=None)

    @classmethod
    def make(cls, kernel, gas, spec, devices=None) -> "DenseEngine":
        sharding = realization_sharding(devices, spec.n_realizations)
        return cls(kernel, gas, spec.key, spec.dtype, spec.n_realizations, sharding)

    @property
    def shape(self):
        return (self.n_realizations, self.gas.n, self.gas.P0.shape[-1])

    @property
    def devices(self):
        return placement(self.sharding)

    def start(self):
        P = self.gas.initial_isospins(self.dtype)
        xp = np if isinstance(P, np.ndarray) else jnp  # host values stay on the host
        P = xp.broadcast_to(P, self.shape)
        return _initial(self.kernel, shard(P, self.sharding))

    def advance(self, slots, step0: int, size: int, save_every: int, save_state: bool):
        step0 = jnp.asarray(step0, jnp.int32)  # traced: a new chunk must not recompile
        slots, (obs, met, states) = _advance(
            self.kernel, slots, self.key, step0, size, save_every, save_state
        )
        return slots, obs, met, to_host(states) if save_state else None

    def state(self, slots) -> np.ndarray:
        return to_host(_in_gas_order(self.kernel, slots))

    def checkpoint(self, slots) -> dict:
        return {"state": to_host(slots.vectors()), "index": to_host(slots.flat_index())}

    def restore(self, saved):
        P = jnp.asarray(saved["state"], dtype=self.dtype)
        slots = Slots.restore(P, jnp.asarray(saved["index"], dtype=jnp.int32))
        return shard(slots, self.sharding)
