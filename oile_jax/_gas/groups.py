"""Groups of a gas: the group of a neutrino is a function of its index in the gas (group
order, `counts` neutrinos each), looked up without a stored group array."""

import jax.numpy as jnp
import numpy as np


def _bounds(counts) -> np.ndarray:
    """The index of the first neutrino of every group but the first."""
    return np.cumsum(counts)[:-1].astype(np.int32)


def group_of(counts, index):
    """The group of the neutrinos `index` (their positions in the gas, group order)."""
    bounds = _bounds(counts)
    if not len(bounds):
        return jnp.zeros(index.shape, jnp.int32)
    return jnp.searchsorted(jnp.asarray(bounds), index, side="right").astype(jnp.int32)


def group_values(counts, table, index):
    """`table[group of index]` for per-group values `table` `(G,)`: a chain of selects for a few
    groups (elementwise, no gather), a lookup for many."""
    bounds = _bounds(counts)
    if len(bounds) > 16:
        return table[group_of(counts, index)]
    out = jnp.broadcast_to(table[0], index.shape)
    for g, bound in enumerate(bounds, start=1):
        out = jnp.where(index >= int(bound), table[g], out)
    return out
