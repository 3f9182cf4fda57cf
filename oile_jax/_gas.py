"""The neutrino gas (poster, situation 2): N neutrinos in groups, meeting in random pairs.

Every step pairs all N neutrinos by a uniformly random perfect matching and applies the
encounter to each pair:
- `Stochastic(dt)`: each pair meets with probability `p = mu dt / gamma` (so each neutrino meets
  a uniformly random partner with probability p); vacuum rotation by `omega_g dt` about `B`,
  split symmetrically around the encounters.
- `Deterministic(vacuum=...)`: every pair meets; a round lasts `gamma / mu`; vacuum split around
  the encounters or evolved inside them (`encounter_vacuum`).
A neutrino never meets itself, and N must be even.

Layout (`Slots`): a realization keeps its neutrinos in slot order, each slot holding a Bloch
vector and the neutrino's index in the gas. A step moves the neutrinos to new slots by a fresh
pseudo-random permutation (`_random.permutation`, O(N) elementwise work, no sort), and slots
`k` and `k + N/2` form this step's pairs. As the permutation is uniform and independent of the
past, so is the matching. The group (vacuum frequency) and the velocity (fixed-velocities model)
of a neutrino are functions of its index, so a step moves 16 bytes per neutrino (float32): one
gather, no scatter. The gas order is restored only for saved states.

Carried form (`_GasModel.enter`): with the vacuum split around the encounters, the vectors are
carried half a step of vacuum ahead and in the frame `(e1, e2, B)`, so a step is the encounters
and one turn about the third axis; they are turned back for observables and saved states.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._angles import AbstractAngleModel, FixedAngle, FixedVelocities, Isotropic
from ._checks import check_bloch, check_finite, check_vector
from ._encounter import encounter_vacuum
from ._random import pair_uniforms, permutation
from ._run import realization_keys
from ._schedule import AbstractSchedule, Deterministic, Stochastic, meet_probability
from ._state import entropy
from ._trig import sin_cos


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


def observe(P, ids, counts, B, ids_sorted: bool = True) -> Observables:
    """Observables of Bloch vectors `P` `(N, 3)` of groups `ids` `(N,)` (any order)."""
    G = len(counts)
    n = jnp.asarray(counts, dtype=P.dtype)
    seg = lambda x: jax.ops.segment_sum(x, ids, num_segments=G, indices_are_sorted=ids_sorted)
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


def _materialize(live, f, *args):
    """`f(*args)`, computed once and stored. XLA's CPU fusion would otherwise recompute `f`
    inside each of its consumers (the permutation in every gathered plane, the hashed angles in
    every updated component: 95 ms instead of 26 ms per step at N = 1e6). A `lax.cond` on
    `live` (true at run time, unknown to the compiler) is a fusion boundary; on other backends
    `f` is inlined."""
    if jax.default_backend() != "cpu":
        return f(*args)
    shapes = jax.eval_shape(f, *args)
    zeros = lambda *_: jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
    return jax.lax.cond(live, f, zeros, *args)


@jax.custom_batching.custom_vmap
def _take(x: Array, index: Int[Array, " n"]) -> Array:
    """`x[index]` for 1-d `x`. Under `vmap`, one gather from the flattened batch instead of
    XLA's batched gather, which builds and reads an index pair per element (about 1.5 times as
    slow on the CPU)."""
    return x[index]


@_take.def_vmap
def _take_vmap(axis_size, in_batched, x, index):
    x_batched, index_batched = in_batched
    if not x_batched:
        x = jnp.broadcast_to(x, (axis_size,) + x.shape)
    if not index_batched:
        index = jnp.broadcast_to(index, (axis_size,) + index.shape)
    if x.size >= 2**31:  # flat positions would overflow int32
        return jax.vmap(lambda x, i: x[i])(x, index), True
    offsets = (x.shape[1] * jnp.arange(axis_size, dtype=index.dtype))[:, None]
    flat = _take(x.reshape(-1), (index + offsets).reshape(-1))
    return flat.reshape(index.shape), True


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _rotate(P, B, sin, one_minus_cos):
    """`P` rotated about the unit vector `B` by the angle `a` with `sin a`, `1 - cos a`; vectors
    as component triples."""
    dot = B[0] * P[0] + B[1] * P[1] + B[2] * P[2]
    return tuple(
        p + sin * c + one_minus_cos * (b * dot - p)
        for p, c, b in zip(P, _cross(B, P), B, strict=True)
    )


def _exchange(Pa, Pb, sin2, sin_cos):
    """The change of `Pa` in an encounter with `Pb` (`Pb` changes by its negative):
    `sin^2 c (Pb - Pa) + sin c cos c (Pb x Pa)`."""
    return tuple(
        sin2 * (b - a) + sin_cos * x for a, b, x in zip(Pa, Pb, _cross(Pb, Pa), strict=True)
    )


def _components(P):
    return (P[..., 0], P[..., 1], P[..., 2])


def _frame(B: Float[Array, "3"]) -> Float[Array, "3 3"]:
    """Rows `e1, e2, B`: a right-handed orthonormal frame whose third axis is the unit `B`."""
    helper = jax.nn.one_hot(jnp.argmin(jnp.abs(B)), 3, dtype=B.dtype)
    e1 = jnp.cross(helper, B)
    e1 = e1 / jnp.linalg.norm(e1)
    return jnp.stack([e1, jnp.cross(B, e1), B])


def _coefficients(c):
    """`(sin^2 c, sin c cos c)` of encounter angles `c`."""
    sin, cos = sin_cos(c)
    return sin * sin, sin * cos


class Slots(eqx.Module):
    """One realization's neutrinos in slot order (leading axes added by the driver). Slot
    `(s, k)`, `s` in `{0, 1}`, `k < N/2`; this step's pairs are the slots `(0, k)`, `(1, k)`.

    - `P`: the Bloch vectors as three planes `(x, y, z)`, each `(2, N/2)`.
    - `index` `(2, N/2)` int32: the neutrino in each slot (its position in the gas, group
      order).
    """

    P: tuple[Array, Array, Array]
    index: Int[Array, "2 N/2"]

    @classmethod
    def restore(cls, P: Float[Array, "... N 3"], index: Int[Array, "... N"]) -> "Slots":
        """Slots from the Bloch vectors and indices in slot order, flat."""
        pairs = lambda x: x.reshape(x.shape[:-1] + (2, x.shape[-1] // 2))
        return cls(P=tuple(pairs(x) for x in _components(P)), index=pairs(index))

    @classmethod
    def start(cls, P: Float[Array, "... N 3"]) -> "Slots":
        """Neutrino `i` in slot `i` (flat); `P` in gas order."""
        # Behind a barrier: XLA would otherwise fold everything computed from the indices (the
        # groups of the first observables) into constants of N elements at compile time.
        index = jax.lax.optimization_barrier(jnp.arange(P.shape[-2], dtype=jnp.int32))
        return cls.restore(P, jnp.broadcast_to(index, P.shape[:-1]))

    def vectors(self) -> Float[Array, "... N 3"]:
        """The Bloch vectors in slot order, flat."""
        P = jnp.stack(self.P, axis=-1)
        return P.reshape(P.shape[:-3] + (-1, 3))

    def flat_index(self) -> Int[Array, "... N"]:
        return self.index.reshape(self.index.shape[:-2] + (-1,))

    def in_gas_order(self) -> Float[Array, "N 3"]:
        """The Bloch vectors in gas order (one realization)."""
        P = self.vectors()
        return jnp.zeros_like(P).at[self.flat_index()].set(P, unique_indices=True)


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

    def _bounds(self) -> np.ndarray:
        """The index of the first neutrino of every group but the first."""
        return np.cumsum(self.counts)[:-1].astype(np.int32)

    def group_of(self, index):
        """The group of the neutrinos `index`."""
        bounds = self._bounds()
        if not len(bounds):
            return jnp.zeros(index.shape, jnp.int32)
        return jnp.searchsorted(jnp.asarray(bounds), index, side="right").astype(jnp.int32)

    def group_values(self, table, index):
        """`table[group of index]` for per-group values `table` `(G,)`: a chain of selects for a
        few groups (elementwise, no gather), a lookup for many."""
        bounds = self._bounds()
        if len(bounds) > 16:
            return table[self.group_of(index)]
        out = jnp.broadcast_to(table[0], index.shape)
        for g, bound in enumerate(bounds, start=1):
            out = jnp.where(index >= int(bound), table[g], out)
        return out

    def group_rotation(self, dtype, steps: float):
        """Per-group `(sin a, 1 - cos a)` of the vacuum angle `a = omega_g tau steps`."""
        tau = self.schedule.step_length(self.gamma, self.mu)
        angle = (self.omegas * tau * steps).astype(dtype)
        return jnp.sin(angle), 2 * jnp.sin(angle / 2) ** 2

    def _precess(self, P, index, steps: float):
        """Vectors `P` (component triples in the frame of `B`) of the neutrinos `index` rotated
        about `B` (the frame's third axis) by their vacuum angle over `steps` steps."""
        sin, one_minus_cos = (
            self.group_values(x, index) for x in self.group_rotation(P[0].dtype, steps)
        )
        x, y, z = P
        return (x - one_minus_cos * x - sin * y, y - one_minus_cos * y + sin * x, z)

    def enter(self, slots: Slots) -> Slots:
        """The form the gas is carried in, from slots holding Bloch vectors. With the vacuum split
        around the encounters, each step is `R E R` (`R` half a step of vacuum, `E` the
        encounters), so `n` steps are `R E (R^2 E)^(n - 1) R`: the gas is carried half a step of
        vacuum ahead (`Q = R P`), and in the frame `(e1, e2, B)`, where `R^2` turns `x` and `y`
        only. A step is then `E` and one full turn, a third of the work of two half turns about
        a general `B`; `B . P` is the third component and untouched by the vacuum. With the
        vacuum inside the encounters, the Bloch vectors themselves."""
        if self.vacuum_inside:
            return slots
        M = _frame(self.B.astype(slots.P[0].dtype))
        P = tuple(sum(M[i, k] * slots.P[k] for k in range(3)) for i in range(3))
        return Slots(P=self._precess(P, slots.index, 0.5), index=slots.index)

    def leave(self, slots: Slots) -> Slots:
        """Slots holding the Bloch vectors, from the carried form (`enter`)."""
        if self.vacuum_inside:
            return slots
        M = _frame(self.B.astype(slots.P[0].dtype))
        P = self._precess(slots.P, slots.index, -0.5)
        return Slots(
            P=tuple(sum(M[k, i] * P[k] for k in range(3)) for i in range(3)), index=slots.index
        )

    def rotate(self, P, rotation):
        """`P` `(..., 3)` rotated by the half-step vacuum angles `rotation = (sin, 1 - cos)`
        (each broadcast against `P[..., 0]`)."""
        B = _components(self.B.astype(P.dtype))
        return jnp.stack(_rotate(_components(P), B, *rotation), axis=-1)

    def angles_and_meetings(self, u_meet, u_x, x_velocities, dtype):
        """Encounter angles `c` of a step's pairs (0 for pairs that do not meet) and the number
        of encounters, from the pairs' two uniforms and (fixed-velocities model)
        `x_velocities = 1 - v_a . v_b`."""
        if isinstance(self.angles, FixedVelocities):
            x = x_velocities
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
        """The changes `(d_a, d_b)` of the pairs `(Pa, Pb)` `(..., 3)` (groups `group_a`,
        `group_b`) in an encounter of angle `c`; with vacuum inside, the pair also precesses
        for one round."""
        dtype = Pa.dtype
        if self.vacuum_inside:
            tau = self.schedule.step_length(self.gamma, self.mu)
            phase = (self.omegas * tau).astype(dtype)
            Pa2, Pb2 = encounter_vacuum(
                Pa, Pb, c, phase_i=phase[group_a], phase_j=phase[group_b], B=self.B.astype(dtype)
            )
            return Pa2 - Pa, Pb2 - Pb
        d_a = jnp.stack(_exchange(_components(Pa), _components(Pb), *_coefficients(c)), axis=-1)
        return d_a, -d_a

    # The dense gas, one realization in `Slots`; `live` is a traced True (see `_materialize`).

    def shuffle(self, slots: Slots, words, live) -> Slots:
        """The neutrinos moved to new slots by this step's permutation."""
        perm = _materialize(live, lambda w: permutation(w, self.n), words)
        move = lambda x, perm: _take(x.reshape(-1), perm).reshape(x.shape)
        return _materialize(live, lambda s, p: jax.tree.map(lambda x: move(x, p), s), slots, perm)

    def encounter_angles(self, index, words, velocity_words, live, dtype):
        """Encounter angles `c` `(N/2,)` of the pairs `(index[0, k], index[1, k])` (0 where a
        pair does not meet) and the number of encounters."""

        def angles(index, words, velocity_words):
            u_meet, u_x = pair_uniforms(words, self.n // 2, dtype)
            x = None
            if isinstance(self.angles, FixedVelocities):
                x = FixedVelocities.x(velocity_words, index[0], index[1], dtype)
            return self.angles_and_meetings(u_meet, u_x, x, dtype)

        return _materialize(live, angles, index, words, velocity_words)

    def encounters(self, slots: Slots, c, live) -> Slots:
        """The pairs `(0, k)`, `(1, k)` of slots in the carried form (`enter`) meet at angles
        `c`, then precess for one step (or with the vacuum inside the encounter)."""
        if self.vacuum_inside:
            Pa, Pb = (jnp.stack([x[i] for x in slots.P], axis=-1) for i in (0, 1))
            group = self.group_of(slots.index)
            d_a, d_b = self.collide(Pa, Pb, c, group[0], group[1])
            P = _components(jnp.stack([Pa + d_a, Pb + d_b]))
        else:
            # The encounter is symmetric (`Pb` changes by `_exchange(Pb, Pa)`), so each plane is
            # one elementwise pass over all slots, the partner read from the other row.
            sin2, sin_cos = _materialize(live, _coefficients, c)
            partner = tuple(x[::-1] for x in slots.P)
            d = _exchange(slots.P, partner, sin2, sin_cos)
            P = tuple(p + x for p, x in zip(slots.P, d, strict=True))
            P = self._precess(P, slots.index, 1.0)
        return Slots(P=P, index=slots.index)

    def observe(self, slots: Slots) -> Observables:
        """Observables of slots in the carried form (`enter`)."""
        vectors = self.leave(slots)
        P = vectors.vectors()
        B = self.B.astype(P.dtype)
        obs = observe(P, self.group_of(vectors.flat_index()), self.counts, B, ids_sorted=False)
        if self.vacuum_inside:
            return obs
        # `B . sum P` is the sum of the carried third components, which the vacuum leaves alone.
        return eqx.tree_at(lambda o: o.lepton, obs, jnp.sum(slots.P[2]))

    def in_gas_order(self, slots: Slots) -> Float[Array, "N 3"]:
        """The Bloch vectors in gas order, from slots in the carried form (one realization)."""
        return self.leave(slots).in_gas_order()

    def step(self, slots: Slots, words, velocity_words, live):
        """One step of one realization, slots in the carried form (`enter`). Returns the new
        slots and the number of encounters."""
        slots = self.shuffle(slots, words, live)
        c, n_met = self.encounter_angles(slots.index, words, velocity_words, live, slots.P[0].dtype)
        return self.encounters(slots, c, live), n_met


def velocities_for(angles, key, n: int, dtype):
    if isinstance(angles, FixedVelocities):
        return angles.velocities(key, n, dtype)
    return jnp.zeros((0, 3), dtype=dtype)


def realization_velocities(angles, key, n_realizations: int, n: int, dtype):
    """`velocities_for` every realization, `(R, N, 3)` (`(R, 0, 3)` without fixed velocities):
    realization `r` draws them with the first key of `split(fold_in(key, r))`."""
    keys = realization_keys(key, n_realizations)
    return jax.vmap(lambda k: velocities_for(angles, jax.random.split(k)[0], n, dtype))(keys)


def check_gas_state(P, name: str = "P0"):
    return check_bloch(check_finite(P, name), name)


def as_state(P: ArrayLike, n: int, dtype) -> Array:
    P = check_vector(P, "state", dtype)
    if P.shape[-2:] != (n, 3):
        raise ValueError(f"state must have shape (..., {n}, 3), got {P.shape}")
    return P
