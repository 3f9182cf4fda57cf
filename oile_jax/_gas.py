"""The neutrino gas (poster, situation 2): N neutrinos in groups, meeting in random pairs.

Every step draws a uniformly random perfect matching of all N neutrinos (`_random.matching`,
O(N) elementwise work, no sort) and applies the encounter to each pair:
- `Stochastic(dt)`: each pair meets with probability `p = mu dt / gamma` (so each neutrino meets
  a uniformly random partner with probability p); vacuum rotation by `omega_g dt` about `B`,
  split symmetrically around the encounters.
- `Deterministic(vacuum=...)`: every pair meets; a round lasts `gamma / mu`; vacuum split around
  the encounters or evolved inside them (`encounter_vacuum`).
A neutrino never meets itself, and N must be even.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._angles import AbstractAngleModel, FixedAngle, FixedVelocities, Isotropic
from ._checks import check_bloch, check_finite, check_vector
from ._encounter import encounter_vacuum
from ._random import matching, pair_uniforms
from ._schedule import AbstractSchedule, Deterministic, Stochastic, meet_probability
from ._state import entropy


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
                "pairing every neutrino "
                "needs N even"
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


class Observables(eqx.Module):
    """Per-save observables of one realization (leading axes added by the driver).

    - `group_mean` `(G, 3)`: mean Bloch vector of each group; `group_std` `(G, 3)`: standard
      deviation of the members' components; `group_length` `(G,)`: mean of `|P_i|`;
      `group_entropy` `(G,)`: mean one-neutrino entanglement entropy (nats).
    - `total` `(3,)`: `sum_i P_i`; `lepton` `()`: `B . sum_i P_i`.
    """

    group_mean: Array
    group_std: Array
    group_length: Array
    group_entropy: Array
    total: Array
    lepton: Array


def observe(P, ids, counts, B) -> Observables:
    G = len(counts)
    n = jnp.asarray(counts, dtype=P.dtype)
    seg = lambda x: jax.ops.segment_sum(x, ids, num_segments=G, indices_are_sorted=True)
    mean = seg(P) / n[:, None]
    # Two passes: the spread can be far below the mean (seeded instabilities).
    var = seg((P - mean[ids]) ** 2) / n[:, None]
    total = jnp.sum(P, axis=0)
    return Observables(
        group_mean=mean,
        group_std=jnp.sqrt(var),
        group_length=seg(jnp.linalg.norm(P, axis=-1)) / n,
        group_entropy=seg(entropy(P)) / n,
        total=total,
        lepton=jnp.dot(total, B),
    )


class _GasModel(eqx.Module):
    counts: tuple[int, ...] = eqx.field(static=True)
    omegas: Float[Array, " G"]
    gamma: Float[Array, ""]
    mu: Float[Array, ""]
    B: Float[Array, "3"]
    angles: AbstractAngleModel
    schedule: AbstractSchedule

    @property
    def n(self):
        return sum(self.counts)

    def ids(self):
        return jnp.asarray(np.repeat(np.arange(len(self.counts), dtype=np.int32), self.counts))

    def group_half_rotation(self, dtype):
        """Per-group `(sin a, 1 - cos a)` of the half-step vacuum angle `a = omega_g tau / 2`."""
        tau = self.schedule.step_length(self.gamma, self.mu)
        angle = (self.omegas * tau / 2).astype(dtype)
        return jnp.sin(angle), 2 * jnp.sin(angle / 2) ** 2

    def half_rotation(self, dtype):
        """`group_half_rotation` for every neutrino, shape `(N, 1)` each."""
        sin, one_minus_cos = self.group_half_rotation(dtype)
        ids = self.ids()
        return sin[ids][:, None], one_minus_cos[ids][:, None]

    def rotate(self, P, rotation):
        sin, one_minus_cos = rotation
        B = self.B.astype(P.dtype)
        BxP = jnp.cross(jnp.broadcast_to(B, P.shape), P)
        return P + sin * BxP + one_minus_cos * (B * (P @ B)[..., None] - P)

    def angles_and_meetings(self, u_meet, u_x, v_a, v_b, dtype):
        """Encounter angles `c` of a step's pairs (0 for pairs that do not meet) and the number
        of encounters, from the pairs' two uniforms and (fixed-velocities model) velocities."""
        if isinstance(self.angles, FixedVelocities):
            x = 1 - jnp.sum(v_a * v_b, axis=-1)
        elif isinstance(self.angles, (Isotropic, FixedAngle)):
            x = self.angles.from_uniform(u_x)
        else:
            raise ValueError(f"angles={self.angles!r} is not supported by the gas")
        c = self.gamma.astype(dtype) * x
        if isinstance(self.schedule, Stochastic):
            met = u_meet < meet_probability(self.schedule, self.gamma, self.mu).astype(dtype)
            return jnp.where(met, c, 0.0), jnp.sum(met, dtype=jnp.int32)
        return c, jnp.asarray(c.size, dtype=jnp.int32)

    @property
    def vacuum_inside(self) -> bool:
        return isinstance(self.schedule, Deterministic) and self.schedule.vacuum == "inside"

    def collide(self, Pa, Pb, c, group_a, group_b):
        """The changes `(d_a, d_b)` of the pairs `(Pa, Pb)` (groups `group_a`, `group_b`) in an
        encounter of angle `c`; with vacuum inside, the pair also precesses for one round."""
        dtype = Pa.dtype
        if self.vacuum_inside:
            tau = self.schedule.step_length(self.gamma, self.mu)
            phase = (self.omegas * tau).astype(dtype)
            Pa2, Pb2 = encounter_vacuum(
                Pa, Pb, c, phase_i=phase[group_a], phase_j=phase[group_b], B=self.B.astype(dtype)
            )
            return Pa2 - Pa, Pb2 - Pb
        cc = c[..., None]
        d_a = jnp.sin(cc) ** 2 * (Pb - Pa) + (jnp.sin(2 * cc) / 2) * jnp.cross(Pb, Pa)
        return d_a, -d_a

    def pairs(self, words, velocities, dtype):
        """This step's matching `(a, b)`, encounter angles `c` (0 for pairs that do not meet)
        and number of encounters."""
        a, b = matching(words, self.n)
        u_meet, u_x = pair_uniforms(words, self.n // 2, dtype)
        if isinstance(self.angles, FixedVelocities):
            v_a, v_b = velocities[a], velocities[b]
        else:
            v_a = v_b = None
        c, n_met = self.angles_and_meetings(u_meet, u_x, v_a, v_b, dtype)
        return a, b, c, n_met

    def step(self, P, words, velocities, rotation):
        """One step of one realization. Returns the new state and the number of encounters."""
        a, b, c, n_met = self.pairs(words, velocities, P.dtype)
        if not self.vacuum_inside:
            P = self.rotate(P, rotation)
        ids = self.ids()
        Pa, Pb = P[a], P[b]
        d_a, d_b = self.collide(Pa, Pb, c, ids[a], ids[b])
        P = P.at[a].set(Pa + d_a, unique_indices=True).at[b].set(Pb + d_b, unique_indices=True)
        if not self.vacuum_inside:
            P = self.rotate(P, rotation)
        return P, n_met


def velocities_for(angles, key, n: int, dtype):
    if isinstance(angles, FixedVelocities):
        return angles.velocities(key, n, dtype)
    return jnp.zeros((0, 3), dtype=dtype)


def check_gas_state(P, name: str = "P0"):
    return check_bloch(check_finite(P, name), name)


def as_state(P: ArrayLike, n: int, dtype) -> Array:
    P = check_vector(P, "state", dtype)
    if P.shape[-2:] != (n, 3):
        raise ValueError(f"state must have shape (..., {n}, 3), got {P.shape}")
    return P
