"""One gas sharded along the neutrino axis, with random pairing across shards.

The `N` neutrinos of a realization live in `S` shards of `M = N / S`, placed on `D` devices
(`S` a multiple of `D`; a one-axis `Mesh`, `shard_map`). Every shard holds its neutrinos in the
dense engine's `Slots` and takes the dense engine's step (`kernel.GasKernel.step`: a uniformly
random permutation of the shard, keyed by key, realization, step and shard; encounters of the
slots `(0, k)`, `(1, k)`; the vacuum in the carried form). Every `exchange_every` steps the
shards mix: each shard is shuffled again and cut into `S` chunks of `M / S`, and chunk `e` goes
to shard `e` (one `all_to_all` between devices). Group and velocity are functions of a
neutrino's index, so a neutrino carries its vector and index only. Everything is defined per
shard, never per device, so 1, 2 or `S` devices make the same pairs, meetings and angles (the
same encounter counts); the floating-point results agree to rounding (another device count is
another XLA program, which may fuse, contract multiply-adds and order reductions otherwise).
Saved observables are reduced shard by shard and added in shard order.

Pairing statistics (tested in `tests/test_sharded_gas.py`). The shards start mixed (one
exchange before the first step). Within a step the partner of a neutrino is uniform over the
other `M - 1` members of its shard. After an exchange a shard holds exactly `M / S` neutrinos of
every shard, a uniformly random subset of each. With `exchange_every = 1`, a neutrino meets
- a given neutrino of its own previous shard with probability `(M - S) / (S (M - 1)^2)`,
- a given neutrino of another shard with probability `1 / (S (M - 1))`,
against `1 / (N - 1)` for uniform random pairing: both are uniform up to a relative `O(S / M)`,
and the first is the probability of meeting the previous partner again. Many-neutrino
statistics differ at the same order (`tests/test_sharded_gas.py` compares the decay of opposite
groups with a plain NumPy loop of this schedule). With `exchange_every = K > 1` the shards stay
closed for `K` steps, and within those a pair meets again with probability `1 / (M - 1)`, `S`
times the uniform value: use it only where `K / M` is negligible (it saves `K - 1` of every `K`
exchanges).

Memory per neutrino on the devices: that of the dense engine, shard by shard (the Bloch vector
and index, the shuffled copy, the permutation and the pair coefficients; `_resources.gas_bytes`
counts it for both engines).
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PRNGKeyArray

from .._sampling.random import WORDS, realization_keys, realization_streams
from .._support.sharding import device_list, to_host
from .engine import AbstractGasEngine
from .kernel import GasKernel, Slots
from .model import Gas

AXIS = "shards"


def check_shards(sharding, n: int, save_every: int) -> None:
    """Refuse `sharding.shards` and `exchange_every` that do not fit a gas of `n` neutrinos
    saved every `save_every` steps."""
    shards, exchange_every = sharding.shards, sharding.exchange_every
    if n % (shards * shards) or (n // shards) % 2:
        raise ValueError(
            f"Sharding.shards={shards} does not fit the gas: N={n} must be a multiple of "
            f"shards^2 = {shards * shards} with N / shards even (every shard sends "
            f"N / shards^2 neutrinos to every shard and pairs its own)"
        )
    if save_every % exchange_every:
        raise ValueError(
            f"SaveAt.every={save_every} must be a multiple of Sharding.exchange_every="
            f"{exchange_every}"
        )


def shard_mesh(devices: "str | int | Sequence | None", shards: int) -> Mesh:
    """A one-axis mesh over `devices` (default: the first device) for `shards` shards."""
    devices = jax.devices()[:1] if devices is None else device_list(devices)
    if shards % len(devices):
        raise ValueError(
            f"Sharding.shards={shards} must be a multiple of the number of devices ({len(devices)})"
        )
    return Mesh(np.asarray(devices), (AXIS,))


def _spec(leading: int = 1) -> PartitionSpec:
    return PartitionSpec(*([None] * leading), AXIS)


def _shard_ids(L: int):
    """Global indices of this device's `L` shards."""
    return jax.lax.axis_index(AXIS).astype(jnp.int32) * L + jnp.arange(L, dtype=jnp.int32)


def _shard_words(key, shard_ids):
    return jax.vmap(
        lambda s: jax.random.bits(jax.random.fold_in(key, s), (WORDS,), dtype=jnp.uint32)
    )(shard_ids)


def shard_step(kernel: GasKernel, slots: Slots, words, velocity_words, live, s):
    """Step `s` of the local shards `(L, ...)` of one realization: the dense step in every
    shard. Returns the new slots and the number of encounters."""
    step = lambda slots, words: kernel.step(slots, words, velocity_words, live, s)
    slots, _, met = jax.vmap(step)(slots, words)
    return slots, jnp.sum(met)


def _exchange(kernel: GasKernel, slots: Slots, words, n_devices: int, live) -> Slots:
    """Shuffle every local shard, cut it into `S` chunks and send chunk `e` to shard `e`."""
    L, M = slots.index.shape[0], slots.index[0].size
    S = L * n_devices
    slots = jax.vmap(lambda s, w: kernel.shuffle(s, w, live))(slots, words)

    def send(x):
        # [source a, destination device f, destination shard b, k]
        x = x.reshape((L, n_devices, L, M // S))
        # -> [a, source device d, b, k]
        x = jax.lax.all_to_all(x, AXIS, 1, 1)
        # -> [b, d, a, k]: shard b holds chunk b of every source shard d L + a, in order.
        return jnp.swapaxes(x, 0, 2).reshape((L, 2, M // 2))

    return jax.tree.map(send, slots)


def _combine(x):
    """Per-shard sums `(L, ...)` of this device to the gas's: gathered from every device and
    added in shard order (the same on every device)."""
    return jax.lax.all_gather(x, AXIS, axis=0, tiled=True).sum(axis=0)


def _observe(kernel: GasKernel, slots: Slots):
    return kernel.observe_sums(slots, combine=_combine)


@eqx.filter_jit
def _start(kernel: GasKernel, P0, key, n_realizations: int, shards: int, mesh: Mesh):
    """The initial slots: shard `s` holds neutrinos `s M ... (s + 1) M - 1` of the gas in the
    carried form, then one exchange (keyed by `fold_in(key_r, 1)`), so that shards start as
    random stratified samples of the gas rather than contiguous blocks of it. Returns the slots
    and the initial observables."""
    n, R = kernel.n, n_realizations
    M = n // shards
    D = P0.shape[-1]
    P = jnp.broadcast_to(P0, (R, n, D)).reshape(R, shards, M, D)
    index = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (R, n)).reshape(R, shards, M)
    slots = jax.vmap(jax.vmap(kernel.enter))(Slots.restore(P, index))
    n_devices = mesh.shape[AXIS]

    def body(kernel, slots, keys):
        L = slots.index.shape[1]
        shard_ids = _shard_ids(L)
        live = keys.shape[0] > 0  # a Python True: the mixing exchange is outside the scan

        def one(slots, key_r):
            words = _shard_words(jax.random.fold_in(key_r, 1), shard_ids)
            slots = _exchange(kernel, slots, words, n_devices, live)
            return slots, _observe(kernel, slots)

        return jax.vmap(one)(slots, keys)

    keys = realization_keys(key, R)
    return jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(PartitionSpec(), _spec(), PartitionSpec()),
        out_specs=(_spec(), PartitionSpec()),
        check_vma=False,  # observables replicated: all_gather, then the same sum everywhere
    )(kernel, slots, keys)


@eqx.filter_jit
def _advance(
    kernel: GasKernel,
    slots: Slots,
    key,
    step0,
    n_intervals: int,
    save_every: int,
    exchange_every: int,
    save_state: bool,
    mesh: Mesh,
):
    """`n_intervals * save_every` steps from global step `step0` (a multiple of
    `exchange_every`) for every realization. Returns the slots and, per save interval, the
    observables, the encounters and (if `save_state`) the Bloch vectors and indices."""
    n_devices = mesh.shape[AXIS]
    K = exchange_every

    def body(kernel, slots, keys, step0):
        L = slots.index.shape[1]
        shard_ids = _shard_ids(L)
        S = L * n_devices

        def one(slots, key_r):
            velocity_key, steps_key = realization_streams(key_r)
            velocity_words = kernel.angles.velocity_words(velocity_key)

            def step(slots, s):
                words = _shard_words(jax.random.fold_in(steps_key, s), shard_ids)
                return shard_step(kernel, slots, words, velocity_words, s >= 0, s)

            def epoch(slots, e):
                steps = e * K + jnp.arange(K, dtype=jnp.int32)
                slots, met = jax.lax.scan(step, slots, steps)
                words = _shard_words(jax.random.fold_in(steps_key, steps[-1]), S + shard_ids)
                return _exchange(kernel, slots, words, n_devices, e >= 0), jnp.sum(met)

            def interval(slots, k):
                first = (step0 + k * save_every) // K
                epochs = first + jnp.arange(save_every // K, dtype=jnp.int32)
                slots, met = jax.lax.scan(epoch, slots, epochs)
                saved = None
                if save_state:
                    vectors = jax.vmap(kernel.leave)(slots)
                    saved = (vectors.vectors(), vectors.flat_index())
                met = jax.lax.psum(jnp.sum(met), AXIS)
                return slots, (_observe(kernel, slots), met, saved)

            return jax.lax.scan(interval, slots, jnp.arange(n_intervals, dtype=jnp.int32))

        return jax.vmap(one)(slots, keys)

    keys = realization_keys(key, slots.index.shape[0])
    replicated = PartitionSpec()
    out_specs = (_spec(), (replicated, replicated, (_spec(2), _spec(2)) if save_state else None))
    return jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(replicated, _spec(), replicated, replicated),
        out_specs=out_specs,
        check_vma=False,  # observables replicated: all_gather, then the same sum everywhere
    )(kernel, slots, keys, step0)


@eqx.filter_jit
def _leave(kernel: GasKernel, slots: Slots):
    vectors = jax.vmap(jax.vmap(kernel.leave))(slots)
    return vectors.vectors(), vectors.flat_index()


def unpermute(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per-neutrino `values` `(..., S, M, k)` in shard layout, back in gas order `(..., N, k)`."""
    lead, n = index.shape[:-2], index.shape[-2] * index.shape[-1]
    values = values.reshape((-1, n, values.shape[-1]))
    out = np.empty_like(values)
    np.put_along_axis(out, index.reshape(-1, n, 1), values, axis=1)
    return out.reshape(lead + (n, values.shape[-1]))


class ShardedEngine(AbstractGasEngine):
    """The sharded layout behind `simulate_gas(..., sharding=Sharding(shards=S))`: slots
    `(R, S, 2, M/2)`, the shard axis split across the devices of a one-axis mesh."""

    kernel: GasKernel
    gas: Gas
    key: PRNGKeyArray
    dtype: np.dtype = eqx.field(static=True)
    n_realizations: int = eqx.field(static=True)
    shards: int = eqx.field(static=True)
    exchange_every: int = eqx.field(static=True)
    mesh: Mesh = eqx.field(static=True)

    @classmethod
    def make(cls, kernel, gas, spec, sharding) -> "ShardedEngine":
        """The engine of `sharding` (`Sharding` with `shards`; `check_shards` passed)."""
        shards, exchange_every = sharding.shards, sharding.exchange_every
        mesh = shard_mesh(sharding.devices, shards)
        return cls(
            kernel, gas, spec.key, spec.dtype, spec.n_realizations, shards, exchange_every, mesh
        )

    @property
    def shape(self):
        return (self.n_realizations, self.gas.n, self.gas.P0.shape[-1])

    @property
    def devices(self):
        return list(self.mesh.devices.flat)

    def start(self):
        P0 = self.gas.initial_isospins(self.dtype)
        return _start(self.kernel, P0, self.key, self.n_realizations, self.shards, self.mesh)

    def advance(self, slots, step0: int, size: int, save_every: int, save_state: bool):
        slots, (obs, met, saved) = _advance(
            self.kernel,
            slots,
            self.key,
            jnp.asarray(step0, jnp.int32),  # traced: a new chunk must not recompile
            size,
            save_every,
            self.exchange_every,
            save_state,
            self.mesh,
        )
        states = unpermute(to_host(saved[0]), to_host(saved[1])) if save_state else None
        return slots, obs, met, states

    def state(self, slots) -> np.ndarray:
        P, index = _leave(self.kernel, slots)
        return unpermute(to_host(P), to_host(index))

    def checkpoint(self, slots) -> dict:
        R = self.n_realizations
        return {
            "state": to_host(slots.vectors()).reshape(R, -1, len(slots.P)),
            "index": to_host(slots.flat_index()).reshape(R, -1),
        }

    def restore(self, saved) -> Slots:
        R, S = self.n_realizations, self.shards
        P = np.asarray(saved["state"], self.dtype).reshape(R, S, -1, self.shape[-1])
        index = np.asarray(saved["index"], np.int32).reshape(R, S, -1)
        slots = Slots.restore(jnp.asarray(P), jnp.asarray(index))
        sharding = NamedSharding(self.mesh, _spec())
        return jax.tree.map(lambda x: jax.device_put(x, sharding), slots)
