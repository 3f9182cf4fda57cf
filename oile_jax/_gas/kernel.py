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
matter, second order in the step for `lambda(t)`). With constant matter the two half turns of
consecutive steps are one: the vectors are carried half a turn ahead, and a step is the
encounters and one full turn (for three flavours an 8 x 8 matrix per neutrino: half the work).
With `lambda(t)` the vectors are carried as they are.
"""

import abc
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name
from jaxtyping import Array, Float, Int

from .._physics.system import System
from .._sampling.angles import AbstractAngleModel
from .._sampling.random import pair_uniforms, permutation, swap_uniforms
from .._sampling.schedule import AbstractSchedule
from .._support.sharding import platform
from .groups import group_of, group_values
from .observe import Observables, observe


def materialize(live, f, *args):
    """`f(*args)`, computed once and stored. XLA's CPU fusion would otherwise recompute `f`
    inside each of its consumers (the permutation in every gathered plane, the hashed angles in
    every updated component). A `lax.cond` on `live` (true at run time, unknown to the compiler)
    is a fusion boundary; on other backends `f` is inlined. Differentiable: the tangents are
    computed outside the `cond` (a `cond` differentiated as such would carry every residual of
    `f` out of both of its branches, each step, in reverse mode)."""
    if platform() != "cpu":
        return f(*args)
    g, consts = jax.closure_convert(f, *args)
    return _stored(g, live, tuple(consts), args)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _stored(g, live, consts, args):
    shapes = jax.eval_shape(g, *args, *consts)
    zeros = lambda *_: jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
    return jax.lax.cond(live, lambda c, a: g(*a, *c), zeros, consts, args)


@_stored.defjvp
def _stored_jvp(g, primals, tangents):
    live, consts, args = primals
    _, d_consts, d_args = tangents
    _, d_out = jax.jvp(lambda c, a: g(*a, *c), (consts, args), (d_consts, d_args))
    return _stored(g, live, consts, args), d_out


# What reverse mode keeps of a step besides its input (`GasKernel.differentiable_step`): the
# parts computed by hashing, its permutation and its pairs' encounter variables.
_PERMUTATION, _ENCOUNTER_X = "gas_step_permutation", "gas_step_encounter_x"


@jax.custom_jvp
def take(x: Array, index: Int[Array, " n"]) -> Array:
    """`x[index]` for 1-d `x` and a permutation `index`. Under `vmap`, one gather from the
    flattened batch instead of XLA's batched gather, which builds and reads an index pair per
    element. Differentiable: the tangent is gathered by plain indexing (unique indices), which
    JAX transposes into a scatter-add in every transformation (a `custom_vmap` function alone
    has no transpose)."""
    return _take(x, index)


@take.defjvp
def _take_jvp(primals, tangents):
    x, index = primals
    return _take(x, index), tangents[0].at[index].get(unique_indices=True)


@jax.custom_batching.custom_vmap
def _take(x, index):
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


def _components(P):
    return tuple(P[..., a] for a in range(P.shape[-1]))


@jax.custom_jvp
def _on_rows(x):
    """`x` `(n/2,)`, one number per pair, on both rows `(2, n/2)` of the pairs: a broadcast, whose
    tangent is a stack, so that reverse mode adds two slices (the transpose of a broadcast over
    the rows is a reduction, many times slower on the CPU)."""
    return jnp.broadcast_to(x, (2,) + x.shape)


@_on_rows.defjvp
def _on_rows_jvp(primals, tangents):
    return _on_rows(*primals), jnp.stack([tangents[0], tangents[0]])


class Slots(eqx.Module):
    """Neutrinos in slot order (leading axes added by the engines). Slot `(s, k)`, `s` in
    `{0, 1}`, `k < n/2`; this step's pairs are the slots `(0, k)`, `(1, k)`.

    - `P`: the Bloch vectors as `D` planes (`(x, y, z)` for two flavours), each `(2, n/2)`.
    - `index` `(2, n/2)` int32: the neutrino in each slot (its position in the gas).
    """

    P: tuple[Array, ...]
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
        return P.reshape(P.shape[:-3] + (-1, len(self.P)))

    def flat_index(self) -> Int[Array, "... n"]:
        return self.index.reshape(self.index.shape[:-2] + (-1,))

    def in_gas_order(self) -> Float[Array, "N 3"]:
        """The Bloch vectors in gas order (one realization, all of its neutrinos)."""
        P = self.vectors()
        return jnp.zeros_like(P).at[self.flat_index()].set(P, unique_indices=True)


def _turned(R, P):
    """Component tuples `P` turned by the nest of per-neutrino rotation entries `R`."""
    D = len(P)
    return tuple(sum(R[i][k] * P[k] for k in range(D)) for i in range(D))


def _in_frame(M, P, transpose: bool = False):
    """Component tuples `P` in the frame `M` (rows the frame's axes), or back (`transpose`)."""
    D = len(P)
    entry = (lambda i, k: M[k, i]) if transpose else (lambda i, k: M[i, k])
    return tuple(sum(entry(i, k) * P[k] for k in range(D)) for i in range(D))


class GasKernel(eqx.Module):
    """The physics of one gas step: the groups (`counts`), the physical system (their signed
    frequencies, matter, the coupling and its history, the angle model) and the schedule."""

    counts: tuple[int, ...] = eqx.field(static=True)
    system: System
    schedule: AbstractSchedule
    mixed: bool = eqx.field(static=True)
    propagation: "AbstractPropagation"

    def __init__(self, counts, system: System, schedule: AbstractSchedule, mixed: bool = False):
        self.counts = tuple(counts)
        self.system = system
        self.schedule = schedule
        self.mixed = mixed
        self.propagation = propagation(system, schedule)

    @classmethod
    def make(cls, gas, spec) -> "GasKernel":
        """The kernel of a validated gas and run specification. `mixed`: whether nu-nubar
        pairs need their own map (three flavours with both species)."""
        anti = gas.antineutrino
        mixed = gas.n_flavours > 2 and any(anti) and not all(anti)
        return cls(gas.counts, spec.system, spec.schedule, mixed)

    @property
    def n(self) -> int:
        return sum(self.counts)

    @property
    def n_flavours(self) -> int:
        return self.system.n_flavours

    @property
    def angles(self) -> AbstractAngleModel:
        return self.system.angles

    def antineutrinos(self, index):
        """Whether the neutrinos `index` are antineutrinos (their groups')."""
        return group_values(self.counts, self.system.antineutrino, index)

    def step_length(self):
        return self.system.step_length(self.schedule)

    def midpoint(self, step, dtype):
        """The time at the middle of step `step` (an int32 index)."""
        return (step.astype(dtype) + 0.5) * self.step_length().astype(dtype)

    def half_turns(self, index, t, dtype, steps: float = 0.5, transpose: bool = False):
        """The rotation of each neutrino `index` about `omega_g B + lambda(t) L` over `steps`
        steps (half a step by default; `transpose`: its inverse), as a `D x D` nest of
        per-neutrino entries."""
        tau = self.step_length().astype(dtype)
        R = self.system.turns(t, tau * steps, dtype)
        if transpose:
            R = jnp.swapaxes(R, -1, -2)
        D = R.shape[-1]
        return [[group_values(self.counts, R[:, i, k], index) for k in range(D)] for i in range(D)]

    def group_rotation(self, dtype, steps: float, factor):
        """Per-group `(sin a, 1 - cos a)` of the vacuum angle `a = omega_g tau steps factor`."""
        angle = self.system.vacuum_angles(self.step_length(), steps, factor, dtype)
        return jnp.sin(angle), 2 * jnp.sin(angle / 2) ** 2

    def _precess(self, P, index, steps: float):
        """Vectors `P` (component tuples in the carried frame, `_flavours.mass_frame`) of the
        neutrinos `index` turned by their vacuum over `steps` steps: each plane of two
        components by its angle (two flavours: `x`, `y` about `B`, the third axis)."""
        _, factors, planes = self.system.vacuum_frame(P[0].dtype)
        P = list(P)
        for (a, b), factor in zip(planes, factors, strict=True):
            sin, one_minus_cos = (
                group_values(self.counts, x, index)
                for x in self.group_rotation(P[0].dtype, steps, factor)
            )
            x, y = P[a], P[b]
            P[a], P[b] = x - one_minus_cos * x + sin * y, y - one_minus_cos * y - sin * x
        return tuple(P)

    def enter(self, slots: Slots) -> Slots:
        """The form the gas is carried in (`AbstractPropagation.enter`), from slots holding
        Bloch vectors."""
        return self.propagation.enter(self, slots)

    def leave(self, slots: Slots) -> Slots:
        """Slots holding the Bloch vectors, from the carried form (`enter`)."""
        return self.propagation.leave(self, slots)

    def shuffle(self, slots: Slots, words, live) -> Slots:
        """The neutrinos moved to new slots by this step's permutation (of the slots' size)."""
        n = slots.index.size
        perm = materialize(live, lambda w: permutation(w, n), words)
        perm = checkpoint_name(perm, _PERMUTATION)
        move = lambda x, perm: take(x.reshape(-1), perm).reshape(x.shape)
        return materialize(live, lambda s, p: jax.tree.map(lambda x: move(x, p), s), slots, perm)

    def encounter_angles(self, index, words, velocity_words, live, dtype, t):
        """Encounter angles `c` `(n/2,)` of the pairs `(index[0, k], index[1, k])` (0 where a
        pair does not meet) and the number of encounters, in the step whose midpoint is `t`."""

        def angles(index, words, velocity_words, t):
            u_meet, u_x = pair_uniforms(words, index.shape[-1], dtype)
            x = self.angles.pair_x(u_x, velocity_words, index[0], index[1], dtype)
            x, met = self.schedule.meetings(u_meet, x, self.system.gamma, self.system.coupling(t))
            return x, jnp.sum(met, dtype=jnp.int32)

        x, n_met = materialize(live, angles, index, words, velocity_words, t)
        # `gamma` applied outside the stored part: its derivative is the stored `x`.
        x = checkpoint_name(x, _ENCOUNTER_X)
        return self.system.gamma.astype(dtype) * x, n_met

    def encounters(self, slots: Slots, c, live, t) -> Slots:
        """The pairs `(0, k)`, `(1, k)` of slots in the carried form (`enter`) meet at angles
        `c`, with one step of the one-body field around them (`AbstractPropagation.step`)."""
        return self.propagation.step(self, slots, c, live, t)

    def exchange(self, P, index, c, live):
        """Component tuples `P` after the pairs `(0, k)`, `(1, k)` meet at angles `c` (the
        neutrinos `index`; `live` as in `materialize`), by the system's encounter."""
        meet = self.system.encounter
        coefficients = materialize(live, meet.coefficients, c)
        if self.n_flavours == 2 and meet.antisymmetric:
            # One change `d` per pair, added to one row and taken from the other: in reverse
            # mode no row reversal of computed values (which XLA's fusion recomputes at the
            # reversed indices).
            Pa, Pb = tuple(x[0] for x in P), tuple(x[1] for x in P)
            d = meet.change(Pa, Pb, coefficients, 2)
            return tuple(jnp.stack([a + x, b - x]) for a, b, x in zip(Pa, Pb, d, strict=True))
        # Each row from its partner's, in one elementwise pass over both rows, the pair
        # coefficients broadcast in it: with the rows joined as above, or the coefficients
        # stored on both rows, the three-flavour forward step ran slower.
        coefficients, mixed = tuple(_on_rows(x) for x in coefficients), None
        if self.mixed:
            anti = self.antineutrinos(index)
            coefficients, mixed = meet.mixed_coefficients(
                _on_rows(c), coefficients, anti, self.n_flavours
            )
        partner = tuple(x[::-1] for x in P)
        d = meet.change(P, partner, coefficients, self.n_flavours, mixed)
        return tuple(p + x for p, x in zip(P, d, strict=True))

    def step(self, slots: Slots, words, velocity_words, live, step):
        """Step `step` (int32, global) of one realization (or one shard), slots in the carried
        form (`enter`). Returns the new slots (the pairs of this step in the slots `(0, k)`,
        `(1, k)`), their encounter angles and the number of encounters. `live` is a traced True
        (see `materialize`)."""
        dtype = slots.P[0].dtype
        t = self.midpoint(step, dtype)
        slots = self.shuffle(slots, words, live)
        c, n_met = self.encounter_angles(slots.index, words, velocity_words, live, dtype, t)
        slots = self.encounters(slots, c, live, t)
        if self.system.opacities is not None and self.system.opacities.scatters:
            slots = self.scatter(slots, words, live, t)
        return slots, c, n_met

    def scatter(self, slots: Slots, words, live, t) -> Slots:
        """`Reemission`'s scattering at the end of the step: the pairs `(0, k)`, `(1, k)` of
        neutrinos of one species and frequency exchange their groups (their directions: each
        state moves to the other's group) with the probability `swap_probabilities`. The
        groups keep their counts; what is exchanged is which neutrino holds which state."""
        opacities = self.system.opacities

        def swapped(index, words, t):
            dtype = t.dtype
            u = swap_uniforms(words, index.shape[-1], dtype)
            tau = self.step_length().astype(dtype)
            q = opacities.swap_probabilities(t, self.counts, tau, dtype)
            ids = opacities.classes
            cls = group_values(self.counts, ids, index)
            swap = (cls[0] == cls[1]) & (u < group_values(self.counts, q, index[0]))
            return jnp.where(swap, index[::-1], index)

        index = materialize(live, swapped, slots.index, words, t)
        return Slots(P=slots.P, index=index)

    def differentiable_step(self, slots: Slots, words, velocity_words, live, step):
        """`step` under `jax.checkpoint`, for reverse mode: it keeps the step's input slots, its
        permutation and its pairs' encounter variables, and recomputes the rest (elementwise)
        while it runs back through the step, instead of storing every intermediate value of
        it (a dozen gas-sized arrays). The same numbers as `step`; without differentiation
        the same program."""
        policy = jax.checkpoint_policies.save_only_these_names(_PERMUTATION, _ENCOUNTER_X)
        # `prevent_cse=False`: the step runs inside scans, which already keep XLA from merging
        # the recomputation with the forward pass (JAX's advice for `checkpoint` in a scan).
        run = jax.checkpoint(
            lambda kernel, *args: kernel.step(*args), prevent_cse=False, policy=policy
        )
        return run(self, slots, words, velocity_words, live, step)

    def observe_sums(self, slots: Slots, combine=None) -> Observables:
        """Observables of slots in the carried form (`enter`); `combine`, if given, adds the
        per-group sums of other parts of the gas (the sharded engine's other shards)."""
        vectors = self.leave(slots)
        P = vectors.vectors()
        group = group_of(self.counts, vectors.flat_index())
        # Three flavours: the entropy of an antineutrino is that of its `Pbar = -s`, not of `s`.
        signs = None
        if self.n_flavours > 2 and self.system.has_antineutrinos:
            signs = self.system.signs(P.dtype)
        B = self.system.B.astype(P.dtype)
        obs = observe(P, group, self.counts, B, combine=combine, signs=signs)
        if not self.propagation.in_vacuum_frame:
            return obs
        # `B . sum P` is in the carried components the vacuum leaves alone: the third for two
        # flavours (`B` itself), the diagonal ones for more.
        if self.n_flavours == 2:
            weights = {2: 1.0}
        else:
            M, _, planes = self.system.vacuum_frame(P.dtype)
            turned = {a for plane in planes for a in plane}
            MB = M @ B
            weights = {a: MB[a] for a in range(len(slots.P)) if a not in turned}
        sums = lambda x: jnp.sum(x) if combine is None else combine(jnp.sum(x, axis=(-2, -1)))
        lepton = sum(w * sums(slots.P[a]) for a, w in weights.items())
        return eqx.tree_at(lambda o: o.lepton, obs, lepton)

    def in_gas_order(self, slots: Slots) -> Float[Array, "N D"]:
        """The Bloch vectors in gas order, from slots in the carried form (one realization)."""
        return self.leave(slots).in_gas_order()


class AbstractPropagation(eqx.Module):
    """How a step applies the one-body field around its encounters, and the form the gas is
    carried in between steps. Chosen once, by `propagation`, from the schedule and the system.
    `in_vacuum_frame`: whether the carried components are those of the vacuum's frame (then
    `B . sum P` is read from the components the vacuum leaves alone)."""

    in_vacuum_frame: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def enter(self, kernel: GasKernel, slots: Slots) -> Slots:
        """The carried form, from slots holding Bloch vectors."""

    @abc.abstractmethod
    def leave(self, kernel: GasKernel, slots: Slots) -> Slots:
        """Slots holding Bloch vectors, from the carried form."""

    @abc.abstractmethod
    def step(self, kernel: GasKernel, slots: Slots, c, live, t) -> Slots:
        """The encounters at angles `c` and one step of the field (the step's midpoint `t`),
        on the carried form."""


class AbstractPlainPropagation(AbstractPropagation):
    """Propagations that carry the Bloch vectors as they are (no frame, nothing ahead)."""

    in_vacuum_frame = False

    def enter(self, kernel, slots):
        return slots

    def leave(self, kernel, slots):
        return slots


class VacuumInside(AbstractPlainPropagation):
    """`Deterministic(vacuum="inside")` (two flavours): each pair evolves under the vacuum and
    the encounter together (the encounter's `with_vacuum`); the Bloch vectors are carried as
    they are."""

    def step(self, kernel, slots, c, live, t):
        dtype = slots.P[0].dtype
        Pa, Pb = (jnp.stack([x[i] for x in slots.P], axis=-1) for i in (0, 1))
        phases = (kernel.system.frequencies() * kernel.step_length()).astype(dtype)
        phase = group_values(kernel.counts, phases, slots.index)
        B = kernel.system.B.astype(dtype)
        Pa, Pb = kernel.system.encounter.with_vacuum(
            Pa, Pb, c, phase_i=phase[0], phase_j=phase[1], B=B
        )
        return Slots(P=_components(jnp.stack([Pa, Pb])), index=slots.index)


class CarriedVacuum(AbstractPropagation):
    """The vacuum split around the encounters, no matter. Each step is `R E R` (`R` half a
    step of vacuum, `E` the encounters), so `n` steps are `R E (R^2 E)^(n - 1) R`: the gas is
    carried half a step of vacuum ahead (`Q = R P`), and in the frame `(e1, e2, B)`, where
    `R^2` turns `x` and `y` only. A step is then `E` and one full turn, a third of the work of
    two half turns about a general `B`; `B . P` is the third component and untouched by the
    vacuum (three flavours: the vacuum's eigenframe, `_flavours.mass_frame`)."""

    in_vacuum_frame = True

    def enter(self, kernel, slots):
        M = kernel.system.vacuum_frame(slots.P[0].dtype)[0]
        P = _in_frame(M, slots.P)
        return Slots(P=kernel._precess(P, slots.index, 0.5), index=slots.index)

    def leave(self, kernel, slots):
        M = kernel.system.vacuum_frame(slots.P[0].dtype)[0]
        P = kernel._precess(slots.P, slots.index, -0.5)
        return Slots(P=_in_frame(M, P, transpose=True), index=slots.index)

    def step(self, kernel, slots, c, live, t):
        P = kernel.exchange(slots.P, slots.index, c, live)
        return Slots(P=kernel._precess(P, slots.index, 1.0), index=slots.index)


class CarriedMatter(AbstractPropagation):
    """Constant matter, the field split around the encounters: each group turns about
    `omega_g B + lambda L`; the gas is carried half a turn ahead (`R P`, `R` each group's half
    turn), so that a step is `E` and one full turn (for three flavours an 8 x 8 matrix per
    neutrino: half the work of two half turns)."""

    in_vacuum_frame = False

    def enter(self, kernel, slots):
        R = kernel.half_turns(slots.index, 0.0, slots.P[0].dtype)
        return Slots(P=_turned(R, slots.P), index=slots.index)

    def leave(self, kernel, slots):
        R = kernel.half_turns(slots.index, 0.0, slots.P[0].dtype, transpose=True)
        return Slots(P=_turned(R, slots.P), index=slots.index)

    def step(self, kernel, slots, c, live, t):
        P = kernel.exchange(slots.P, slots.index, c, live)
        # This step's second half turn and the next step's first.
        R = kernel.half_turns(slots.index, t, slots.P[0].dtype, steps=1.0)
        return Slots(P=_turned(R, P), index=slots.index)


class MidpointTurns(AbstractPlainPropagation):
    """Matter that changes in time, `lambda(t)`: half a turn about the field at the step's
    midpoint, the encounters, and the same half turn again (second order in the step); the
    Bloch vectors are carried as they are."""

    def step(self, kernel, slots, c, live, t):
        R = kernel.half_turns(slots.index, t, slots.P[0].dtype)
        P = kernel.exchange(_turned(R, slots.P), slots.index, c, live)
        return Slots(P=_turned(R, P), index=slots.index)


class MidpointRelaxation(AbstractPlainPropagation):
    """`Reemission` (physics.md section 14): half a step of each group's one-body field and its
    Lindblad equation together (the exact affine map of `System.relaxing_turns`, the field at
    the step's midpoint), the encounters, and the same half step again (second order in the
    step); the Bloch vectors are carried as they are."""

    def step(self, kernel, slots, c, live, t):
        dtype = slots.P[0].dtype
        tau = kernel.step_length().astype(dtype)
        M = kernel.system.relaxing_turns(t, tau / 2, dtype)
        D = len(slots.P)
        R = [[group_values(kernel.counts, M[:, i, k], slots.index) for k in range(D)]
             for i in range(D)]  # fmt: skip
        shift = [group_values(kernel.counts, M[:, i, D], slots.index) for i in range(D)]
        relax = lambda P: tuple(x + y for x, y in zip(_turned(R, P), shift, strict=True))
        P = kernel.exchange(relax(slots.P), slots.index, c, live)
        return Slots(P=relax(P), index=slots.index)


def propagation(system: System, schedule: AbstractSchedule) -> AbstractPropagation:
    """The propagation of a system under a schedule."""
    if system.opacities is not None:
        return MidpointRelaxation()
    if schedule.vacuum_inside:
        return VacuumInside()
    if system.field_is_vacuum:
        return CarriedVacuum()
    return CarriedMatter() if system.field_is_constant else MidpointTurns()
