"""Observables of a gas: the one reducer every engine uses, and the one list of them every
result of a gas run carries (`GasSolution`, `GasTrajectory` hold an `Observables` of series and
answer each of its fields as an attribute; `oile run` writes every field)."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._physics.states import entropy, von_neumann_entropy


class Observables(eqx.Module):
    """Per-save observables of one realization (leading axes added by the driver).

    - `group_mean` `(G, D)`: mean Bloch vector of each group (`D = 3` for two flavours, 8 for
      three); `group_std` `(G, D)`: standard deviation of the members' components;
      `group_length` `(G,)`: mean of `|P_i|`; `group_entropy` `(G,)`: mean one-neutrino
      entanglement entropy `-Tr rho ln rho` (nats).
    - `total` `(D,)`: `sum_i P_i`; `lepton` `()`: `B . sum_i P_i`.
    """

    group_mean: Array
    group_std: Array
    group_length: Array
    group_entropy: Array
    total: Array
    lepton: Array


FIELDS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(Observables))


def series(result, name: str):
    """`result.<name>` for a field of `Observables`: the series `result.observables` holds
    (the `__getattr__` of the results of a gas run)."""
    if name in FIELDS:
        return getattr(result.observables, name)
    raise AttributeError(f"{type(result).__name__!r} object has no attribute {name!r}")


def observe(P, group, counts, B, ids_sorted: bool = False, combine=None, signs=None) -> Observables:
    """Observables of Bloch vectors `P` `(n, D)` of groups `group` `(n,)` (any order); `signs`
    `(G,)`, if given, turn the vectors into the physical ones for the entropy.

    `P` may hold only a part of the gas, in blocks `(L, M, 3)` (the sharded engine's local
    shards): then every sum is taken block by block and `combine` turns the per-block sums
    `(L, ...)` into the gas's (adding the blocks of other devices, in block order)."""
    G = len(counts)
    n = jnp.asarray(counts, dtype=P.dtype)
    if combine is None:
        seg = lambda x: jax.ops.segment_sum(x, group, num_segments=G, indices_are_sorted=ids_sorted)
        add = lambda x: jnp.sum(x, axis=0)
    else:
        per_block = jax.vmap(lambda x, g: jax.ops.segment_sum(x, g, num_segments=G))
        seg = lambda x: combine(per_block(x, group))
        add = lambda x: combine(jnp.sum(x, axis=-2))
    mean = seg(P) / n[:, None]
    # Two passes: the spread can be far below the mean (seeded instabilities).
    var = seg((P - mean[group]) ** 2) / n[:, None]
    total = add(P)
    return Observables(
        group_mean=mean,
        group_std=jnp.sqrt(var),
        group_length=seg(jnp.linalg.norm(P, axis=-1)) / n,
        group_entropy=seg(_entropy(P if signs is None else P * signs[group][..., None])) / n,
        total=total,
        lepton=jnp.dot(total, B),
    )


def _entropy(P):
    return entropy(P) if P.shape[-1] == 3 else von_neumann_entropy(P)
