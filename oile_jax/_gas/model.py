"""The gas as the user gives it (`Gas`: groups, vacuum frequencies, initial states) and its
per-group tables: the group of a neutrino is a function of its index in the gas (group order),
so a step carries no group array."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import check_bloch, check_finite, check_vector
from .._random import realization_keys, realization_streams


class Gas(eqx.Module):
    """A gas of neutrino groups.

    - `counts`: neutrinos in each group (static; their sum N must be even).
    - `omegas`: vacuum frequency of each group, shape `(G,)` (traced).
    - `P0`: initial Bloch vector of each group `(G, 3)`, or of each neutrino `(N, 3)` in group
      order (traced).
    """

    counts: tuple[int, ...] = eqx.field(static=True)
    omegas: Float[Array, " G"]
    P0: Float[Array, "G_or_N 3"]

    def __init__(self, counts, omegas, P0):
        counts = tuple(counts) if isinstance(counts, (list, tuple, np.ndarray)) else (counts,)
        for c in counts:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
                raise ValueError(f"counts must be positive integers, got {counts!r}")
        self.counts = tuple(int(c) for c in counts)
        self.omegas = jnp.asarray(omegas)
        self.P0 = jnp.asarray(P0)

    def __check_init__(self):
        G = len(self.counts)
        if self.omegas.shape != (G,):
            raise ValueError(
                f"omegas must have shape ({G},), one per group, got {self.omegas.shape}"
            )
        if self.P0.shape not in ((G, 3), (self.n, 3)):
            raise ValueError(
                f"P0 must have shape ({G}, 3) (one per group) or ({self.n}, 3) (one per neutrino), "
                f"got {self.P0.shape}"
            )
        if self.n % 2:
            raise ValueError(
                f"the gas has N = {self.n} neutrinos (counts={self.counts}); "
                "pairing every neutrino needs N even"
            )

    @property
    def n(self) -> int:
        return sum(self.counts)

    @property
    def n_groups(self) -> int:
        return len(self.counts)

    @property
    def fractions(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=float) / self.n

    def group_ids(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_groups, dtype=np.int32), self.counts)

    def initial_state(self, dtype) -> Float[Array, "N 3"]:
        P0 = self.P0.astype(dtype)
        if P0.shape[0] == self.n and self.n != self.n_groups:
            return P0
        return jnp.repeat(P0, np.asarray(self.counts), axis=0, total_repeat_length=self.n)

    def checked(self, dtype) -> "Gas":
        """This gas with its arrays in `dtype`, finite and physical (`|P0| <= 1`)."""
        P0 = check_bloch(check_finite(check_vector(self.P0, "P0", dtype), "P0"), "P0")
        omegas = check_vector(self.omegas[:, None], "omegas", dtype, size=1)[:, 0]
        return Gas(self.counts, check_finite(omegas, "omegas"), P0)


def check_gas(gas, dtype) -> Gas:
    if not isinstance(gas, Gas):
        raise ValueError(f"gas must be a Gas(counts, omegas, P0), got {type(gas).__name__}")
    return gas.checked(dtype)


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


def realization_velocities(angles, key, n_realizations: int, n: int, dtype):
    """The velocities every realization's angle model keeps, `(R, N, 3)` (`(R, N, 0)` for a
    model without): realization `r` draws them with the velocity key of its key tree."""
    keys = realization_keys(key, n_realizations)
    return jax.vmap(lambda k: angles.velocities(realization_streams(k)[0], n, dtype))(keys)
