"""The gas as the user gives it (`Gas`: groups, species, vacuum frequencies, initial states) and
its per-group tables: the group of a neutrino is a function of its index in the gas (group
order), so a step carries no group array.

Antineutrinos (physics.md section 10): the user gives and gets the physical Bloch vector `Pbar`
of an antineutrino group (a pure `nubar_e` along `+z` in the flavour basis, like `nu_e`); the
engines carry flavour isospins `s = sign_g P` (`sign = -1` for antineutrinos) with signed
frequencies `sign_g omega_g`, on which every pair meets by the same encounter map."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._physics.flavours import flavour_count
from .._physics.states import check_state
from .._physics.system import species_flags
from .._sampling.random import realization_keys, realization_streams
from .._support.checks import check_finite, check_vector, concrete


class Gas(eqx.Module):
    """A gas of neutrino groups.

    - `counts`: neutrinos in each group (static; their sum N must be even).
    - `omegas`: vacuum frequency of each group, shape `(G,)` (traced).
    - `P0`: initial Bloch vector of each group `(G, D)`, or of each neutrino `(N, D)` in group
      order (traced); for an antineutrino group its physical `Pbar`. `D = 3`: two flavours;
      `D = 8`: three flavours (`P^a = Tr(rho lambda^a)`, physics.md section 11; see
      `flavour_state`, `bloch_vector`).
    - `antineutrino`: whether each group is antineutrinos, one bool per group (or one for all;
      static). `omegas` stay the positive `dm^2 / 2E` of both species.
    """

    counts: tuple[int, ...] = eqx.field(static=True)
    omegas: Float[Array, " G"]
    P0: Float[Array, "G_or_N 3"]
    antineutrino: tuple[bool, ...] = eqx.field(static=True)

    def __init__(self, counts, omegas, P0, antineutrino=False):
        counts = tuple(counts) if isinstance(counts, (list, tuple, np.ndarray)) else (counts,)
        if not counts:
            raise ValueError("counts must be positive integers, one per group, got none")
        for c in counts:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
                raise ValueError(f"counts must be positive integers, got {counts!r}")
        self.counts = tuple(int(c) for c in counts)
        self.omegas = jnp.asarray(omegas)
        try:
            if not isinstance(P0, jax.Array) and np.asarray(P0).dtype.kind not in "biuf":
                raise TypeError
            self.P0 = jnp.asarray(P0)
        except (TypeError, ValueError):
            raise ValueError(
                "P0 must be an array of Bloch vectors, one per group (or per neutrino), all of "
                "3 components (two flavours) or all of 8 (three flavours), of real numbers"
            ) from None
        self.antineutrino = species(antineutrino, len(self.counts))

    def __check_init__(self):
        G = len(self.counts)
        if self.omegas.shape != (G,):
            raise ValueError(
                f"omegas must have shape ({G},), one per group, got {self.omegas.shape}"
            )
        D = self.P0.shape[-1] if self.P0.ndim == 2 and self.P0.shape[-1] == 8 else 3
        if self.P0.shape not in ((G, D), (self.n, D)):
            raise ValueError(
                f"P0 must have shape ({G}, {D}) (one per group) or ({self.n}, {D}) (one per "
                f"neutrino; 3 components for two flavours, 8 for three), got {self.P0.shape}"
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
    def n_flavours(self) -> int:
        """2 or 3, from the width of `P0`."""
        return flavour_count(self.P0.shape[-1], "P0")

    @property
    def signs(self) -> np.ndarray:
        """`+1` for each neutrino group, `-1` for each antineutrino group: `s = sign P`."""
        return np.where(self.antineutrino, -1.0, 1.0)

    @property
    def n_groups(self) -> int:
        return len(self.counts)

    @property
    def fractions(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=float) / self.n

    def group_ids(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_groups, dtype=np.int32), self.counts)

    def initial_state(self, dtype) -> Float[Array, "N D"]:
        value = concrete(self.P0)
        if value is not None:  # a NumPy array, made on the host: no program of its own
            P0 = value.astype(dtype)
            if P0.shape[0] == self.n and self.n != self.n_groups:
                return P0
            return np.repeat(P0, self.counts, axis=0)
        P0 = self.P0.astype(dtype)
        if P0.shape[0] == self.n and self.n != self.n_groups:
            return P0
        # Broadcasts (a few groups) or a gather by constant group indices: `jnp.repeat` builds
        # its indices by a cumulative sum of N elements that XLA constant-folds for seconds.
        if self.n_groups <= 16:
            pieces = [jnp.broadcast_to(P0[g], (c, P0.shape[-1])) for g, c in enumerate(self.counts)]
            return jnp.concatenate(pieces)
        return P0[self.group_ids()]

    def neutrino_signs(self, dtype) -> np.ndarray:
        """`signs` of every neutrino `(N, 1)`, gas order."""
        return np.repeat(self.signs, self.counts)[:, None].astype(dtype)

    def initial_isospins(self, dtype) -> Float[Array, "N D"]:
        """The initial flavour isospins `s = sign P` of every neutrino, gas order."""
        P = self.initial_state(dtype)
        return P if not any(self.antineutrino) else P * self.neutrino_signs(dtype)

    def physical(self, s, axis: int = -2):
        """Bloch vectors `P` from isospins `s` (`(..., N, D)` in gas order, or `(..., G, D)`
        per group with `axis` the group or neutrino axis)."""
        if not any(self.antineutrino):
            return s
        per = self.signs if s.shape[axis] == self.n_groups else self.neutrino_signs(float)[:, 0]
        shape = [1] * s.ndim
        shape[axis] = per.shape[0]
        return s * per.reshape(shape).astype(s.dtype)

    def checked(self, dtype) -> "Gas":
        """This gas with its states in `dtype`, finite and physical (density matrices). The
        frequencies are checked where the system is bound to the groups (`System.bind`)."""
        P0 = check_vector(self.P0, "P0", dtype, size=self.P0.shape[-1])
        P0 = check_state(check_finite(P0, "P0"), "P0")
        return Gas(self.counts, self.omegas, P0, self.antineutrino)


def species(antineutrino, n_groups: int) -> tuple[bool, ...]:
    """The `antineutrino` option as one bool per group, static (`System`'s check)."""
    return tuple(bool(f) for f in species_flags(antineutrino, n_groups))


def realization_velocities(angles, key, n_realizations: int, n: int, dtype):
    """The velocities every realization's angle model keeps, `(R, N, 3)` (`(R, N, 0)` for a
    model without): realization `r` draws them with the velocity key of its key tree."""
    keys = realization_keys(key, n_realizations)
    return jax.vmap(lambda k: angles.velocities(realization_streams(k)[0], n, dtype))(keys)
