"""One gas sharded along the neutrino axis, with random pairing across shards.

The `N` neutrinos of a realization live in `S` shards of `M = N / S`, placed on `D` devices
(`S` a multiple of `D`; a one-axis `Mesh`, `shard_map`). A step, in every shard: the half
vacuum rotation, a uniformly random permutation of the shard (`_random.permutation`, keyed by
key, realization, step and shard), encounters of the neighbours `(2k, 2k + 1)`, the other half
rotation. Every `exchange_every` steps the shards mix: each shard is shuffled again and cut into
`S` chunks of `M / S`, and chunk `e` goes to shard `e` (one `all_to_all` between devices).
Neutrinos carry their Bloch vector, group, index in the gas and (fixed-velocities model)
velocity. Everything is defined per shard, never per device, so 1, 2 or `S` devices make the
same pairs, meetings and angles (the same encounter counts); the floating-point results agree
to rounding (another device count is another XLA program, which may fuse, contract multiply-adds
and order reductions otherwise). Saved observables are reduced shard by shard.

Pairing statistics (tested in `tests/test_sharded_gas.py`). The shards start mixed (one
exchange before the first step). Within a step the partner of a neutrino is uniform over the
other `M - 1` members of its shard. After an exchange a shard holds
exactly `M / S` neutrinos of every shard, a uniformly random subset of each. With
`exchange_every = 1`, a neutrino meets
- a given neutrino of its own previous shard with probability `(M - S) / (S (M - 1)^2)`,
- a given neutrino of another shard with probability `1 / (S (M - 1))`,
against `1 / (N - 1)` for uniform random pairing: both are uniform up to a relative `O(S / M)`,
and the first is the probability of meeting the previous partner again. Many-neutrino
statistics differ at the same order: with N = 64 in S = 4 shards of 16, the mean z of a pure +z
half facing a pure -z half decays 2% faster over 6 rounds than under uniform pairing (0.1404
against 0.1428; S = 2: 0.1415; S = 1: 0.1429, in a NumPy loop of the same schedule that the
test compares with). With
`exchange_every = K > 1` the shards stay closed for `K` steps, and within those a pair meets
again with probability `1 / (M - 1)`, `S` times the uniform value: use it only where `K / M` is
negligible (it saves `K - 1` of every `K` exchanges).

Memory per neutrino on the devices: the Bloch vector (3 floats), group and index (2 int32), the
velocity (3 floats, fixed-velocities model only), and as much again for the shuffled copy made
each step: 40 bytes (float32, 64 with velocities), 64 (float64, 112 with velocities).
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._gas import Gas, Observables, _GasModel, realization_velocities
from ._random import WORDS, pair_uniforms, permutation
from ._run import check_count, realization_keys
from ._sharding import device_list, to_host
from ._state import entropy

AXIS = "shards"


class Layout(eqx.Module):
    """The gas in shard layout: leading axes `(R, S, M)` (realizations, shards, members).

    - `P` `(R, S, M, 3)`: Bloch vectors; `index` `(R, S, M)` int32: each neutrino's position in
      the gas (group order); `group` `(R, S, M)` int32; `v` `(R, S, M, 3)` (fixed velocities)
      or `(R, S, M, 0)`.
    """

    P: jax.Array
    index: jax.Array
    group: jax.Array
    v: jax.Array


def check_shards(shards, n: int, exchange_every, save_every: int) -> tuple[int, int]:
    """Validate `shards` and `exchange_every` for a gas of `n` neutrinos."""
    shards = check_count(shards, "shards")
    exchange_every = check_count(exchange_every, "exchange_every")
    if n % (shards * shards) or (n // shards) % 2:
        raise ValueError(
            f"shards={shards} does not fit the gas: N={n} must be a multiple of "
            f"shards^2 = {shards * shards} with N / shards even (every shard sends "
            f"N / shards^2 neutrinos to every shard and pairs its own)"
        )
    if save_every % exchange_every:
        raise ValueError(
            f"save_every={save_every} must be a multiple of exchange_every={exchange_every}"
        )
    return shards, exchange_every


def shard_mesh(devices: "str | int | Sequence | None", shards: int) -> Mesh:
    """A one-axis mesh over `devices` (default: the first device) for `shards` shards."""
    devices = jax.devices()[:1] if devices is None else device_list(devices)
    if shards % len(devices):
        raise ValueError(
            f"shards={shards} must be a multiple of the number of devices ({len(devices)})"
        )
    return Mesh(np.asarray(devices), (AXIS,))


def _spec(leading: int = 1) -> PartitionSpec:
    return PartitionSpec(*([None] * leading), AXIS)


def _gather(tree, perm):
    """Every leaf `(L, M, ...)` permuted within each shard by `perm` `(L, M)`."""
    return jax.tree.map(lambda x: jax.vmap(lambda x, p: x[p])(x, perm), tree)


def _shard_ids(L: int):
    """Global indices of this device's `L` shards."""
    return jax.lax.axis_index(AXIS).astype(jnp.int32) * L + jnp.arange(L, dtype=jnp.int32)


def _shard_words(key, shard_ids):
    return jax.vmap(
        lambda s: jax.random.bits(jax.random.fold_in(key, s), (WORDS,), dtype=jnp.uint32)
    )(shard_ids)


def _local_step(model: _GasModel, lay: Layout, words, rotation):
    """One step of the local shards `(L, M, ...)` of one realization: returns the new layout
    and the number of encounters."""
    L, M = lay.group.shape
    dtype = lay.P.dtype
    perm = jax.vmap(permutation, (0, None))(words, M)
    lay = _gather(lay, perm)
    sin, one_minus_cos = rotation
    per_neutrino = (sin[lay.group], one_minus_cos[lay.group])
    P = lay.P if model.vacuum_inside else model.rotate(lay.P, per_neutrino)
    u_meet, u_x = jax.vmap(pair_uniforms, (0, None, None))(words, M // 2, dtype)
    x = 1 - jnp.sum(lay.v[:, 0::2] * lay.v[:, 1::2], axis=-1)  # fixed velocities only
    c, met = model.angles_and_meetings(u_meet, u_x, x, dtype)
    Pa, Pb = P[:, 0::2], P[:, 1::2]
    d_a, d_b = model.collide(Pa, Pb, c, lay.group[:, 0::2], lay.group[:, 1::2])
    P = jnp.stack([Pa + d_a, Pb + d_b], axis=2).reshape(L, M, 3)
    if not model.vacuum_inside:
        P = model.rotate(P, per_neutrino)
    return eqx.tree_at(lambda t: t.P, lay, P), met


def _exchange(lay: Layout, words, n_devices: int):
    """Shuffle every local shard, cut it into `S` chunks and send chunk `e` to shard `e`."""
    L, M = lay.group.shape
    S = L * n_devices
    lay = _gather(lay, jax.vmap(permutation, (0, None))(words, M))

    def send(x):
        rest = x.shape[2:]
        # [source a, destination device f, destination shard b, k]
        x = x.reshape((L, n_devices, L, M // S) + rest)
        # -> [a, source device d, b, k]
        x = jax.lax.all_to_all(x, AXIS, 1, 1)
        # -> [b, d, a, k]: shard b holds chunk b of every source shard d L + a, in order.
        return jnp.swapaxes(x, 0, 2).reshape((L, M) + rest)

    return jax.tree.map(send, lay)


def _observe(model: _GasModel, P, group) -> Observables:
    """Observables of one realization from its local shards `(L, M, ...)`: per-shard sums,
    gathered from every device and added in shard order."""
    G = len(model.counts)
    counts = jnp.asarray(model.counts, P.dtype)

    def group_sums(x):
        def one(g):
            return jnp.sum(jnp.where((group == g)[..., None], x, 0), axis=1)

        local = jax.lax.map(one, jnp.arange(G, dtype=jnp.int32))
        return jax.lax.all_gather(local, AXIS, axis=1, tiled=True).sum(axis=1)

    first = group_sums(
        jnp.concatenate(
            [P, jnp.linalg.norm(P, axis=-1, keepdims=True), entropy(P)[..., None]], axis=-1
        )
    )
    mean = first[:, :3] / counts[:, None]
    var = group_sums((P - mean[group]) ** 2) / counts[:, None]
    total = jax.lax.all_gather(jnp.sum(P, axis=1), AXIS, tiled=True).sum(axis=0)
    return Observables(
        group_mean=mean,
        group_std=jnp.sqrt(var),
        group_length=first[:, 3] / counts,
        group_entropy=first[:, 4] / counts,
        total=total,
        lepton=jnp.dot(total, model.B.astype(P.dtype)),
    )


@eqx.filter_jit
def _initial(model: _GasModel, P0, key, n_realizations: int, shards: int, mesh: Mesh) -> Layout:
    """The initial layout: shard `s` holds neutrinos `s M ... (s + 1) M - 1` of the gas; the
    velocities are those of the unsharded gas with the same key. Each device builds its part."""
    n, R, dtype = model.n, n_realizations, P0.dtype
    M = n // shards
    v = realization_velocities(model.angles, key, R, n, dtype)
    lay = Layout(
        P=jnp.broadcast_to(P0, (R, n, 3)).reshape(R, shards, M, 3),
        index=jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (R, n)).reshape(R, shards, M),
        group=jnp.broadcast_to(model.ids(), (R, n)).reshape(R, shards, M),
        v=v.reshape(R, shards, M, -1),
    )
    sharding = NamedSharding(mesh, _spec())
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), lay)


@eqx.filter_jit
def _mix(lay: Layout, key, mesh: Mesh) -> Layout:
    """One exchange before the first step (keyed by `fold_in(key_r, 1)`), so that shards start
    as random stratified samples of the gas rather than contiguous blocks of it."""
    n_devices = mesh.shape[AXIS]

    def body(lay, keys):
        L = lay.group.shape[1]
        shard_ids = _shard_ids(L)
        words = lambda key_r: _shard_words(jax.random.fold_in(key_r, 1), shard_ids)
        return jax.vmap(lambda lay, key_r: _exchange(lay, words(key_r), n_devices))(lay, keys)

    keys = realization_keys(key, lay.P.shape[0])
    return jax.shard_map(body, mesh=mesh, in_specs=(_spec(), PartitionSpec()), out_specs=_spec())(
        lay, keys
    )


@eqx.filter_jit
def _observe_all(model: _GasModel, lay: Layout, mesh: Mesh) -> Observables:
    body = lambda model, lay: jax.vmap(lambda P, g: _observe(model, P, g))(lay.P, lay.group)
    return jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(PartitionSpec(), _spec()),
        out_specs=PartitionSpec(),
        check_vma=False,  # replicated: all_gather, then the same sum on every device
    )(model, lay)


@eqx.filter_jit
def _advance(
    model: _GasModel,
    lay: Layout,
    key,
    step0,
    n_intervals: int,
    save_every: int,
    exchange_every: int,
    save_state: bool,
    mesh: Mesh,
):
    """`n_intervals * save_every` steps from global step `step0` (a multiple of
    `exchange_every`) for every realization. Returns the layout and, per save interval, the
    observables, the encounters and (if `save_state`) the Bloch vectors and indices."""
    n_devices = mesh.shape[AXIS]
    rotation = model.group_rotation(lay.P.dtype, 0.5)  # the half steps around the encounters
    K = exchange_every

    def body(model, lay, keys, step0):
        L = lay.group.shape[1]
        shard_ids = _shard_ids(L)
        S = L * n_devices

        def one(lay, key_r):
            key_steps = jax.random.split(key_r)[1]

            def step(lay, s):
                words = _shard_words(jax.random.fold_in(key_steps, s), shard_ids)
                return _local_step(model, lay, words, rotation)

            def epoch(lay, e):
                steps = e * K + jnp.arange(K, dtype=jnp.int32)
                lay, met = jax.lax.scan(step, lay, steps)
                words = _shard_words(jax.random.fold_in(key_steps, steps[-1]), S + shard_ids)
                return _exchange(lay, words, n_devices), jnp.sum(met)

            def interval(lay, k):
                epochs = (step0 + k * save_every) // K + jnp.arange(
                    save_every // K, dtype=jnp.int32
                )
                lay, met = jax.lax.scan(epoch, lay, epochs)
                obs = _observe(model, lay.P, lay.group)
                saved = (lay.P, lay.index) if save_state else None
                return lay, (obs, jax.lax.psum(jnp.sum(met), AXIS), saved)

            return jax.lax.scan(interval, lay, jnp.arange(n_intervals, dtype=jnp.int32))

        return jax.vmap(one)(lay, keys)

    keys = realization_keys(key, lay.P.shape[0])
    replicated = PartitionSpec()
    out_specs = (_spec(), (replicated, replicated, (_spec(2), _spec(2)) if save_state else None))
    return jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(replicated, _spec(), replicated, replicated),
        out_specs=out_specs,
        check_vma=False,  # observables replicated: all_gather, then the same sum everywhere
    )(model, lay, keys, step0)


def unpermute(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per-neutrino `values` `(..., S, M, k)` in shard layout, back in gas order `(..., N, k)`."""
    lead, n = index.shape[:-2], index.shape[-2] * index.shape[-1]
    values = values.reshape((-1, n, values.shape[-1]))
    out = np.empty_like(values)
    np.put_along_axis(out, index.reshape(-1, n, 1), values, axis=1)
    return out.reshape(lead + (n, values.shape[-1]))


class ShardedGasEngine:
    """The sharded layout behind `simulate_gas(..., shards=S)`: start, advance, restore and
    bring results to the host."""

    def __init__(
        self,
        model: _GasModel,
        gas: Gas,
        key,
        n_realizations,
        shards,
        exchange_every,
        devices,
        dtype,
    ):
        self.model, self.gas, self.key = model, gas, key
        self.n_realizations, self.shards, self.exchange_every = (
            n_realizations,
            shards,
            exchange_every,
        )
        self.mesh = shard_mesh(devices, shards)
        self.dtype = dtype
        self.shape = (n_realizations, gas.n, 3)
        self.devices = list(self.mesh.devices.flat)
        self._sharding = NamedSharding(self.mesh, _spec())

    def start(self):
        lay = _initial(
            self.model,
            self.gas.initial_state(self.dtype),
            self.key,
            self.n_realizations,
            self.shards,
            self.mesh,
        )
        lay = _mix(lay, self.key, self.mesh)
        return lay, _observe_all(self.model, lay, self.mesh)

    def advance(self, lay, step0: int, size: int, save_every: int, save_state: bool):
        lay, (obs, met, saved) = _advance(
            self.model,
            lay,
            self.key,
            jnp.asarray(step0, jnp.int32),  # traced: a new chunk must not recompile
            size,
            save_every,
            self.exchange_every,
            save_state,
            self.mesh,
        )
        states = unpermute(to_host(saved[0]), to_host(saved[1])) if save_state else None
        return lay, obs, met, states

    def state(self, lay) -> np.ndarray:
        return unpermute(to_host(lay.P), to_host(lay.index))

    def velocities(self, lay):
        if lay.v.shape[-1] == 0:
            return None
        return unpermute(to_host(lay.v), to_host(lay.index))

    def checkpoint(self, lay) -> dict:
        return {
            "state": to_host(lay.P),
            "state_index": to_host(lay.index),
            "state_group": to_host(lay.group),
            "state_velocities": to_host(lay.v),
        }

    def restore(self, saved) -> Layout:
        def put(x, dtype):
            x = np.asarray(x, dtype)
            return jax.make_array_from_callback(x.shape, self._sharding, lambda i: x[i])

        return Layout(
            P=put(saved["state"], self.dtype),
            index=put(saved["state_index"], np.int32),
            group=put(saved["state_group"], np.int32),
            v=put(saved["state_velocities"], self.dtype),
        )
