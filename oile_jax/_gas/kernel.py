"""The one gas step, shared by every engine (dense, sharded, swept) and the many-body reference.

A realization's neutrinos sit in `Slots`: slot `(s, k)`, `s` in `{0, 1}`, holds a Bloch vector
and the neutrino's index in the gas. A step moves the neutrinos to new slots by a fresh
pseudo-random permutation (`_random.permutation`, O(N) elementwise work, no sort), and slots
`(0, k)`, `(1, k)` form this step's pairs: as the permutation is uniform and independent of the
past, so is the matching. The group (vacuum frequency) and the velocity (fixed-velocities model)
of a neutrino are functions of its index, so a step moves 16 bytes per neutrino (float32): one
gather, no scatter. The gas order is restored only for saved states.

Carried form (`GasKernel.enter`): with the vacuum split around the encounters, the vectors are
carried half a step of vacuum ahead and in the frame `(e1, e2, B)`, so a step is the encounters
and one turn about the third axis; they are turned back for observables and saved states.

The kernel works on flavour isospins (`model.py`): antineutrino groups and the inverted ordering
enter only through the signs of `omegas`. With matter, each group turns about its own axis
`omega_g B + lambda(t) L`: a step is then half a turn (the field at the step's midpoint),
the encounters and the other half, each turn a per-group rotation matrix (exact for constant
matter, second order in the step for `lambda(t)`); the vectors are carried as they are.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._angles import AbstractAngleModel
from .._encounter import encounter_vacuum
from .._groups import group_of, group_values
from .._profile import AbstractProfile
from .._random import pair_uniforms, permutation
from .._schedule import AbstractSchedule
from .._trig import sin_cos
from .observe import Observables, observe


def materialize(live, f, *args):
    """`f(*args)`, computed once and stored. XLA's CPU fusion would otherwise recompute `f`
    inside each of its consumers (the permutation in every gathered plane, the hashed angles in
    every updated component). A `lax.cond` on `live` (true at run time, unknown to the compiler)
    is a fusion boundary; on other backends `f` is inlined."""
    if jax.default_backend() != "cpu":
        return f(*args)
    shapes = jax.eval_shape(f, *args)
    zeros = lambda *_: jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
    return jax.lax.cond(live, f, zeros, *args)


@jax.custom_batching.custom_vmap
def take(x: Array, index: Int[Array, " n"]) -> Array:
    """`x[index]` for 1-d `x`. Under `vmap`, one gather from the flattened batch instead of
    XLA's batched gather, which builds and reads an index pair per element."""
    return x[index]


@take.def_vmap
def _take_vmap(axis_size, in_batched, x, index):
    x_batched, index_batched = in_batched
    if not x_batched:
        x = jnp.broadcast_to(x, (axis_size,) + x.shape)
    if not index_batched:
        index = jnp.broadcast_to(index, (axis_size,) + index.shape)
    if x.size >= 2**31:  # flat positions would overflow int32
        return jax.vmap(lambda x, i: x[i])(x, index), True
    offsets = (x.shape[1] * jnp.arange(axis_size, dtype=index.dtype))[:, None]
    flat = take(x.reshape(-1), (index + offsets).reshape(-1))
    return flat.reshape(index.shape), True


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _exchange(Pa, Pb, sin2, sin_cos):
    """The change of `Pa` in an encounter with `Pb` (`Pb` changes by its negative):
    `sin^2 c (Pb - Pa) + sin c cos c (Pb x Pa)`, vectors as component triples."""
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
    """Neutrinos in slot order (leading axes added by the engines). Slot `(s, k)`, `s` in
    `{0, 1}`, `k < n/2`; this step's pairs are the slots `(0, k)`, `(1, k)`.

    - `P`: the Bloch vectors as three planes `(x, y, z)`, each `(2, n/2)`.
    - `index` `(2, n/2)` int32: the neutrino in each slot (its position in the gas).
    """

    P: tuple[Array, Array, Array]
    index: Int[Array, "2 n/2"]

    @classmethod
    def restore(cls, P: Float[Array, "... n 3"], index: Int[Array, "... n"]) -> "Slots":
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

    def vectors(self) -> Float[Array, "... n 3"]:
        """The Bloch vectors in slot order, flat."""
        P = jnp.stack(self.P, axis=-1)
        return P.reshape(P.shape[:-3] + (-1, 3))

    def flat_index(self) -> Int[Array, "... n"]:
        return self.index.reshape(self.index.shape[:-2] + (-1,))

    def in_gas_order(self) -> Float[Array, "N 3"]:
        """The Bloch vectors in gas order (one realization, all of its neutrinos)."""
        P = self.vectors()
        return jnp.zeros_like(P).at[self.flat_index()].set(P, unique_indices=True)


def _rotations(h, angle_scale):
    """Rotation matrices `(G, 3, 3)` about the axes `h` `(G, 3)` by `|h| angle_scale`
    (Rodrigues; the identity where `h = 0`)."""
    norm = jnp.sqrt(jnp.sum(h * h, axis=-1))
    n = h / jnp.where(norm > 0, norm, 1)[:, None]
    sin, cos = jnp.sin(norm * angle_scale), jnp.cos(norm * angle_scale)
    zero = jnp.zeros_like(n[:, 0])
    cross = jnp.stack(
        [
            jnp.stack([zero, -n[:, 2], n[:, 1]], -1),
            jnp.stack([n[:, 2], zero, -n[:, 0]], -1),
            jnp.stack([-n[:, 1], n[:, 0], zero], -1),
        ],
        axis=-2,
    )
    eye = jnp.eye(3, dtype=h.dtype)
    return (
        cos[:, None, None] * eye
        + sin[:, None, None] * cross
        + (1 - cos)[:, None, None] * n[:, :, None] * n[:, None, :]
    )


def _turned(R, P):
    """Component triples `P` turned by the nest of per-neutrino rotation entries `R`."""
    return tuple(sum(R[i][k] * P[k] for k in range(3)) for i in range(3))


class GasKernel(eqx.Module):
    """The physics of one gas step: groups, vacuum (signed isospin frequencies `omegas`),
    matter, coupling (with its history `density`, `mu(t) = mu density(t)`), angle model and
    schedule."""

    counts: tuple[int, ...] = eqx.field(static=True)
    omegas: Float[Array, " G"]
    gamma: Float[Array, ""]
    mu: Float[Array, ""]
    B: Float[Array, "3"]
    angles: AbstractAngleModel
    schedule: AbstractSchedule
    matter: AbstractProfile | None = None
    L: Float[Array, "3"] | None = None
    density: AbstractProfile | None = None

    @classmethod
    def make(cls, gas, spec) -> "GasKernel":
        """The kernel of a validated gas and run specification."""
        signs = gas.signs * (-1.0 if spec.ordering == "inverted" else 1.0)
        omegas = gas.omegas if (signs == 1).all() else gas.omegas * signs.astype(spec.dtype)
        return cls(
            gas.counts,
            omegas,
            spec.gamma,
            spec.mu,
            spec.B,
            spec.angles,
            spec.schedule,
            spec.matter,
            spec.L,
            spec.density,
        )

    @property
    def n(self) -> int:
        return sum(self.counts)

    @property
    def vacuum_inside(self) -> bool:
        return self.schedule.vacuum_inside

    @property
    def carried(self) -> bool:
        """Whether the vectors are carried in the frame of `B`, half a step ahead (`enter`)."""
        return not self.vacuum_inside and self.matter is None

    def midpoint(self, step, dtype):
        """The time at the middle of step `step` (an int32 index)."""
        tau = self.schedule.step_length(self.gamma, self.mu).astype(dtype)
        return (step.astype(dtype) + 0.5) * tau

    def coupling(self, t):
        """`mu(t)`."""
        return self.mu if self.density is None else self.mu * self.density(t)

    def half_turns(self, index, t, dtype):
        """The rotation of each neutrino `index` about `omega_g B + lambda(t) L` over half a
        step, as a 3x3 nest of per-neutrino entries."""
        h = self.omegas.astype(dtype)[:, None] * self.B.astype(dtype) + self.matter(t).astype(
            dtype
        ) * self.L.astype(dtype)
        tau = self.schedule.step_length(self.gamma, self.mu).astype(dtype)
        R = _rotations(h, tau / 2)
        return [[group_values(self.counts, R[:, i, k], index) for k in range(3)] for i in range(3)]

    def group_rotation(self, dtype, steps: float):
        """Per-group `(sin a, 1 - cos a)` of the vacuum angle `a = omega_g tau steps`."""
        tau = self.schedule.step_length(self.gamma, self.mu)
        angle = (self.omegas * tau * steps).astype(dtype)
        return jnp.sin(angle), 2 * jnp.sin(angle / 2) ** 2

    def _precess(self, P, index, steps: float):
        """Vectors `P` (component triples in the frame of `B`) of the neutrinos `index` rotated
        about `B` (the frame's third axis) by their vacuum angle over `steps` steps."""
        sin, one_minus_cos = (
            group_values(self.counts, x, index) for x in self.group_rotation(P[0].dtype, steps)
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
        vacuum inside the encounters, or with matter, the Bloch vectors themselves."""
        if not self.carried:
            return slots
        M = _frame(self.B.astype(slots.P[0].dtype))
        P = tuple(sum(M[i, k] * slots.P[k] for k in range(3)) for i in range(3))
        return Slots(P=self._precess(P, slots.index, 0.5), index=slots.index)

    def leave(self, slots: Slots) -> Slots:
        """Slots holding the Bloch vectors, from the carried form (`enter`)."""
        if not self.carried:
            return slots
        M = _frame(self.B.astype(slots.P[0].dtype))
        P = self._precess(slots.P, slots.index, -0.5)
        return Slots(
            P=tuple(sum(M[k, i] * P[k] for k in range(3)) for i in range(3)), index=slots.index
        )

    def shuffle(self, slots: Slots, words, live) -> Slots:
        """The neutrinos moved to new slots by this step's permutation (of the slots' size)."""
        n = slots.index.size
        perm = materialize(live, lambda w: permutation(w, n), words)
        move = lambda x, perm: take(x.reshape(-1), perm).reshape(x.shape)
        return materialize(live, lambda s, p: jax.tree.map(lambda x: move(x, p), s), slots, perm)

    def encounter_angles(self, index, words, velocity_words, live, dtype, t):
        """Encounter angles `c` `(n/2,)` of the pairs `(index[0, k], index[1, k])` (0 where a
        pair does not meet) and the number of encounters, in the step whose midpoint is `t`."""

        def angles(index, words, velocity_words, t):
            u_meet, u_x = pair_uniforms(words, index.shape[-1], dtype)
            x = self.angles.pair_x(u_x, velocity_words, index[0], index[1], dtype)
            c, met = self.schedule.meetings(
                u_meet, self.gamma.astype(dtype) * x, self.gamma, self.coupling(t)
            )
            return c, jnp.sum(met, dtype=jnp.int32)

        return materialize(live, angles, index, words, velocity_words, t)

    def encounters(self, slots: Slots, c, live, t) -> Slots:
        """The pairs `(0, k)`, `(1, k)` of slots in the carried form (`enter`) meet at angles
        `c`, then precess for one step (or with the vacuum inside the encounter; with matter,
        half a turn before and half after)."""
        if self.vacuum_inside:
            dtype = slots.P[0].dtype
            Pa, Pb = (jnp.stack([x[i] for x in slots.P], axis=-1) for i in (0, 1))
            tau = self.schedule.step_length(self.gamma, self.mu)
            phase = group_values(self.counts, (self.omegas * tau).astype(dtype), slots.index)
            Pa, Pb = encounter_vacuum(
                Pa, Pb, c, phase_i=phase[0], phase_j=phase[1], B=self.B.astype(dtype)
            )
            return Slots(P=_components(jnp.stack([Pa, Pb])), index=slots.index)
        # The encounter is symmetric (`Pb` changes by `_exchange(Pb, Pa)`), so each plane is one
        # elementwise pass over all slots, the partner read from the other row.
        sin2, sin_cos = materialize(live, _coefficients, c)
        if self.carried:
            P = slots.P
        else:  # the same half turn before and after the encounters (the step's midpoint)
            R = self.half_turns(slots.index, t, slots.P[0].dtype)
            P = _turned(R, slots.P)
        partner = tuple(x[::-1] for x in P)
        d = _exchange(P, partner, sin2, sin_cos)
        P = tuple(p + x for p, x in zip(P, d, strict=True))
        if self.carried:
            return Slots(P=self._precess(P, slots.index, 1.0), index=slots.index)
        return Slots(P=_turned(R, P), index=slots.index)

    def step(self, slots: Slots, words, velocity_words, live, step):
        """Step `step` (int32, global) of one realization (or one shard), slots in the carried
        form (`enter`). Returns the new slots (the pairs of this step in the slots `(0, k)`,
        `(1, k)`), their encounter angles and the number of encounters. `live` is a traced True
        (see `materialize`)."""
        dtype = slots.P[0].dtype
        t = self.midpoint(step, dtype)
        slots = self.shuffle(slots, words, live)
        c, n_met = self.encounter_angles(slots.index, words, velocity_words, live, dtype, t)
        return self.encounters(slots, c, live, t), c, n_met

    def observe_sums(self, slots: Slots, combine=None) -> Observables:
        """Observables of slots in the carried form (`enter`); `combine`, if given, adds the
        per-group sums of other parts of the gas (the sharded engine's other shards)."""
        vectors = self.leave(slots)
        P = vectors.vectors()
        group = group_of(self.counts, vectors.flat_index())
        obs = observe(P, group, self.counts, self.B.astype(P.dtype), combine=combine)
        if not self.carried:
            return obs
        # `B . sum P` is the sum of the carried third components, which the vacuum leaves alone.
        if combine is None:
            lepton = jnp.sum(slots.P[2])
        else:
            lepton = combine(jnp.sum(slots.P[2], axis=(-2, -1)))
        return eqx.tree_at(lambda o: o.lepton, obs, lepton)

    def in_gas_order(self, slots: Slots) -> Float[Array, "N 3"]:
        """The Bloch vectors in gas order, from slots in the carried form (one realization)."""
        return self.leave(slots).in_gas_order()
