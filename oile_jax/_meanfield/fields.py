"""Mean-field and mean-field-plus-collision ODEs (physics.md sections 5 and 6), as Equinox vector
fields solved with diffrax.

Collision options (`collision=`):
- `"none"`: the pure mean field, `dP_i/dt = H_i x P_i`.
- `"stochastic"`: the O(gamma) collision term of the stochastic schedule,
  `- mu gamma/(N-1) sum_j (1 - v_i.v_j)^2 (P_i - P_j)`; in its Poisson limit (p -> 0) by
  default, and with the schedule's step `dt=` (meeting probability `p = mu dt / gamma`) also the
  second-order term of its finite step, `-(dt/2) (DF . F)` as below with `tau = dt`.
- `"deterministic"`: the same plus the O(gamma) term of a schedule whose rounds last
  `tau = gamma / mu`: the ODE whose time-tau flow matches the round's mean map to second order,
  `G = F - (tau/2) (DF . F)` with `F` the interaction part of the mean field. For isotropic,
  uncorrelated angles this is `-(mu gamma/2) <x>^2 Pbar x (Pbar x P_i)`.
  (`<x>^2`, not `<x^2>`, as the per-round mean map of the foreground model shows: its
  transverse part decays per round by `|<cos^2 c> + i <sin c cos c>|`, a rate
  `(4/3 - 1/2) mu gamma` to leading order, as `tests/test_meanfield.py` checks against the exact
  per-round averages and the simulation.)
"""

import abc

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._physics.flavours import flavour_count, star_major
from .._physics.opacities import check_scattering
from .._physics.system import System
from .._sampling.angles import AbstractFreshAngleModel, Isotropic
from .._support.checks import (
    check_if_concrete,
    check_instance,
    check_option,
    check_positive,
    check_scalar,
    concrete,
    refuse,
)
from .solver import AbstractFusedRungeKutta, default_solver

COLLISIONS = ("none", "stochastic", "deterministic")


class AbstractCollision(eqx.Module):
    """The encounters' term beside the mean field (physics.md section 6): none, the O(gamma)
    term of the stochastic schedule, or that of deterministic rounds."""

    # Whether there is a collision term at all.
    present: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def step(self, system: System) -> Array | None:
        """The length `tau` of a schedule step whose second-order term `-(tau/2) DF.F` the
        field carries, or None (no such term)."""


class NoCollision(AbstractCollision):
    """The pure mean field."""

    present = False

    def step(self, system):
        return None


class StochasticCollision(AbstractCollision):
    """The O(gamma) collision term of the stochastic schedule: its Poisson limit (`dt` None), or
    with the schedule's step `dt` also the second-order term of its finite step."""

    dt: Float[Array, ""] | None = None
    present = True

    def step(self, system):
        return self.dt


class DeterministicCollision(AbstractCollision):
    """The O(gamma) terms of deterministic rounds lasting `tau = gamma / mu` (`mu` a number)."""

    present = True

    def step(self, system):
        return system.gamma / system.mu


def collision_term(collision, dt=None, allowed=COLLISIONS) -> AbstractCollision:
    """A collision option: an `AbstractCollision`, or by name (`"none"`, `"stochastic"` with
    the schedule's `dt` or None, `"deterministic"`)."""
    if isinstance(collision, AbstractCollision):
        return collision
    check_option(collision, "collision", allowed)
    if collision == "stochastic":
        return StochasticCollision(dt)
    return DeterministicCollision() if collision == "deterministic" else NoCollision()


class AbstractMeanField(eqx.Module):
    """A mean-field vector field `dP/dt = F(t, P)` of a physical system (`solve_meanfield`,
    `linear_stability` and the equilibria take these).

    A field computes in the component-major layout (`major`): the states `P` `(K, D)` (one
    Bloch vector per class) as `Q = P.T` `(D, K)`, each component a contiguous row, which XLA
    vectorizes over the classes; `solve_meanfield` integrates in that layout. Calling the field
    on `P` is the same field in the states' own layout.

    With the system's `Opacities` (emission, absorption and scattering by the medium, physics.md
    section 14) each class's state also carries its trace, first: `(K, 1 + D)`, the occupation
    matrix `(N / n) 1 + P.lambda / 2`; the mean field turns the Bloch vectors `P` (`flow`), the
    opacities change traces and vectors alike. With `Reemission` (each neutrino's number kept)
    the states stay `(K, D)`."""

    system: eqx.AbstractVar[System]
    collision: eqx.AbstractVar[AbstractCollision]

    @abc.abstractmethod
    def flow(self, t, Q):
        """The mean field (with the encounters' collision term) on the Bloch vectors `Q` in the
        component-major layout: `dQ/dt`, `(D, K)` for `K` classes (`(D,)` for one state)."""

    @abc.abstractmethod
    def weights(self, dtype) -> Array:
        """The classes' weights `(K,)` (their shares of the gas: what scattering between them
        keeps)."""

    def major(self, t, Q, args=None):
        """`dQ/dt` at time `t` of the states `Q` in the component-major layout: `(D, K)` for
        `K` classes (`(1 + D, K)`, the traces first, with opacities)."""
        opacities = self.system.opacities
        if opacities is None:
            return self.flow(t, Q)
        classes = (self.weights(Q.dtype), self.system.omegas, self.system.antineutrino)
        if opacities.keeps_number:  # states of one neutrino each: the Bloch vectors only
            return self.flow(t, Q) + opacities.change(t, Q, *classes)
        dN, dP = opacities.change(t, Q[0], Q[1:], *classes)
        return jnp.concatenate([dN[None], self.flow(t, Q[1:]) + dP])

    def __call__(self, t, P, args=None):
        """`dP/dt` at time `t` of the states `P` `(K, D)` (or `(D,)`; `(K, 1 + D)` with
        opacities)."""
        return jnp.moveaxis(self.major(t, jnp.moveaxis(P, -1, 0)), 0, -1)

    @abc.abstractmethod
    def state_shape(self, D: int) -> tuple:
        """The shape of the states the field takes, `D` components each."""

    @property
    def components(self) -> int:
        """The components of one class's state: `D` (3 or 8), `1 + D` with opacities."""
        D = jnp.shape(self.system.B)[-1]
        opacities = self.system.opacities
        return D if opacities is None or opacities.keeps_number else 1 + D

    @property
    def shape(self) -> tuple:
        """The shape of the states the field takes."""
        return self.state_shape(self.components)

    def signs(self, dtype):
        """The isospin signs of the classes, or None where all are neutrinos."""
        return self.system.signs(dtype) if self.system.has_antineutrinos else None

    def _flavours(self, Q) -> int:
        """The flavour count of the states `Q` (`(D, ...)`, component-major), which `B` must
        match."""
        n = flavour_count(Q.shape[0], "P")
        B = self.system.B
        if B.shape[-1] != Q.shape[0]:
            raise ValueError(
                f"B has {B.shape[-1]} components but the states have {Q.shape[0]}: both "
                "3 (two flavours) or both 8 (three flavours, B = pmns_vacuum(...))"
            )
        return n

    def _one_body(self, t, dtype):
        """The one-body field of each class, component-major `(D, K)`."""
        return self.system.field(t, dtype).T


def _check_system(system: System, collision: AbstractCollision, name: str, directions: bool):
    """The system's options the field cannot apply, refused naming the field; `directions`
    whether its classes have directions (scattering changes them)."""
    if isinstance(collision, DeterministicCollision) and system.density is not None:
        raise ValueError(
            "collision='deterministic' needs mu as a number: a deterministic round lasts "
            "gamma / mu, which a coupling mu(t) does not fix"
        )
    opacities = system.opacities
    if opacities is None:
        return
    if collision.present and not opacities.keeps_number:
        raise ValueError(
            f"{name}: Opacities go with collision='none' (the encounters' collision term is "
            "derived for states of one neutrino each; with Opacities the states are occupations "
            "whose traces change); Reemission keeps each neutrino's number and takes it"
        )
    check_scattering(opacities, system.omegas, system.antineutrino, name, directions=directions,
                     one_direction_per_class=True)  # fmt: skip


class ForegroundField(AbstractMeanField):
    r"""Foreground neutrino in a uniform background `P_b` (physics.md section 5): `omega` its
    vacuum frequency, `system` the `System` (`gamma`, `mu`, `B`; isotropic angles, normal
    ordering, no matter).

    `collision="none"`: $`\dot{\mathbf{P}} = (\omega \mathbf{B} + \mu \mathbf{P}_b) \times
    \mathbf{P}`$
    (mean field). `collision="stochastic"`: the master equation

    $$`\dot{\mathbf{P}} = (\omega \mathbf{B} + \mu_R \mathbf{P}_b) \times \mathbf{P} - \Gamma
    (\mathbf{P} - \mathbf{P}_b)`$$

    with the exact isotropic rates of `master_rates`. Three flavours: `P_b`, `B` and the state of 8
    components, `h * P` for `h x P` (physics.md section 11).
    """

    P_b: Float[Array, " D"]
    system: System
    collision: AbstractCollision

    def __init__(self, P_b, omega, system: System, collision="none"):
        self.P_b = P_b
        self.collision = collision_term(collision, allowed=("none", "stochastic"))
        self.system = check_instance(system, System, "ForegroundField: system").given(
            jnp.reshape(jnp.asarray(omega), (1,))
        )

    def __check_init__(self):
        system = self.system
        if (
            not isinstance(system.angles, Isotropic)
            or system.ordering != "normal"
            or (not system.field_is_vacuum or system.density is not None)
            or system.opacities is not None
        ):
            raise ValueError(
                "ForegroundField is the isotropic foreground in vacuum at a constant mu: its "
                "System takes gamma, a number mu and B only"
            )
        if jnp.shape(self.system.B)[-1:] != jnp.shape(self.P_b)[-1:]:
            raise ValueError(
                f"B and P_b must have the same length, 3 (two flavours) or 8 (three), got "
                f"{jnp.shape(self.system.B)} and {jnp.shape(self.P_b)}"
            )

    def state_shape(self, D):
        return (D,)

    def weights(self, dtype):
        return jnp.ones((1,), dtype)

    def flow(self, t, Q):
        n = flavour_count(Q.shape[0], "P")
        system = self.system
        h = system.field(t, Q.dtype)[0]
        meet = system.encounter
        if not self.collision.present:
            return star_major(h + meet.forward_field(system.coupling(t) * self.P_b), Q, n)
        mu_R, Gamma = meet.isotropic_rates(system.gamma, system.coupling(t))
        return star_major(h + meet.forward_field(mu_R * self.P_b), Q, n) - Gamma * (Q - self.P_b)


class GroupField(AbstractMeanField):
    r"""A gas reduced to groups (every member of a group following its group's vector), for
    angle models whose `x` depends on the pair's groups only: angles drawn afresh at every
    encounter (`Isotropic()` by default, or `FixedAngle(theta)`), `Beams(directions)` (a
    direction per group), or `Axisymmetric(u)` (a ring of polar cosine `u` per group: an
    axisymmetric angular distribution on a grid of `angle_grid`, times energies by `mode_grid`).
    The state is the group vectors `(G, D)`: `P_g` for a neutrino group, `Pbar_g` for an
    antineutrino group (`antineutrino`, one bool per group); `D = 3` for two flavours, 8 for
    three (then `B` is `pmns_vacuum(...)` and `x` below the product `f_abc`, physics.md
    section 11).

    With `s_g = P_g` or `-Pbar_g` and `W_gh`, `W2_gh` the mean of `x`, `x^2` over pairs of
    groups `g`, `h` (`angles.group_weights`; `<x>`, `<x^2>` for fresh angles), summed in a
    cost linear in the groups (`angles.group_sums`: rank 1 for fresh angles, the directions'
    moments for beams):

    $$`\mathbf{H}_g = \pm\omega_g \mathbf{B} + \lambda(t) \mathbf{L} + \mu(t)\, \frac{N \sum_h f_h
    W_{gh} \mathbf{s}_h - W_{gg} \mathbf{s}_g}{N - 1}, \qquad \dot{\mathbf{P}}_g = \mathbf{H}_g
    \times \mathbf{P}_g`$$

    (`n=None`: $`N \to \infty`$; physics.md section 10). Collision:
    $`-\mu\gamma \frac{N}{N-1} \sum_h f_h W^{(2)}_{gh} (\mathbf{P}_g - \mathrm{sign}_g
    \mathbf{s}_h)`$,
    plus for `"deterministic"` (or `"stochastic"` with `dt`) the finite step's
    $`-\frac{\tau}{2} DF \cdot F`$ (physics.md section 6), which for fresh angles is
    $`-\langle x\rangle^2 \frac{\mu\gamma}{2} \mathbf{D} \times (\mathbf{D} \times \mathbf{P}_g)`$,
    $`\mathbf{D} = \sum_h f_h \mathbf{s}_h`$. With three flavours a nu-nubar pair's collision
    term has one more part, $`+\frac32 \mu\gamma \frac{N}{N-1} \sum_{h'} f_h W^{(2)}_{gh}\,
    d(\mathbf{s}_g, \mathbf{s}_h)`$
    over the groups $`h'`$ of the other species (physics.md section 11).

    `system`: the `System` (`gamma`, `mu` a number or a profile of time, `B`, the angle model,
    matter along `L`, the ordering), bound to the groups' `omegas` and species as given.
    `collision` a name or an `AbstractCollision` (`dt`: the stochastic collision's step).

    `fractions` are the groups' weights `f_g` (each group's share of the gas, or a quadrature
    weight times it). The pure mean field (`collision="none"`, `n=None`) also takes signed
    weights, as NuGas writes antineutrinos and ELN distributions: a mode of negative weight and
    negative frequency, holding `Pbar`, is an antineutrino group of the opposite weight.
    Every sum over the groups costs `O(G)` (`angles.group_sums`).
    """

    fractions: Float[Array, " G"]
    system: System
    collision: AbstractCollision
    n: int | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        fractions,
        omegas,
        system: System,
        collision="none",
        n=None,
        dt=None,
        antineutrino=None,
    ):
        self.collision = collision_term(collision, dt)
        self.n = n
        if self.collision.present or n is not None or getattr(system, "opacities", None):
            # Signed (ELN) weights are a way of writing the pure mean field; a collision term,
            # a finite gas or opacities need each group's share of the neutrinos.
            fractions = refuse(
                jnp.asarray(fractions),
                lambda xp, f: f < 0,
                "fractions must be >= 0 with a collision term, a finite n or opacities (each "
                "group's share of the gas); signed (ELN) weights are for the pure mean field "
                "(collision='none', n=None, no opacities)",
            )
        self.fractions = fractions
        self.system = check_instance(system, System, "GroupField: system").given(
            omegas, antineutrino
        )

    def __check_init__(self):
        angles = self.system.angles
        directions = not isinstance(angles, AbstractFreshAngleModel)
        _check_system(self.system, self.collision, "GroupField", directions)
        opacities = self.system.opacities
        if opacities is not None and not opacities.keeps_number and self.n is not None:
            raise ValueError(
                "GroupField: Opacities go with n=None (a finite gas's self-pair is counted per "
                "neutrino; with Opacities each group's number changes); Reemission keeps it"
            )
        if not angles.by_group:
            raise ValueError(
                f"angles={angles!r}: GroupField takes angle models whose x depends on the "
                "groups only (Isotropic(), FixedAngle(theta), Beams(directions)); for fixed "
                "velocities use MultiAngleField"
            )
        angles.group_diagonal(jnp.shape(self.fractions)[0])  # a model of other groups: refused

    def state_shape(self, D):
        return (self.system.n_classes, D)

    def weights(self, dtype):
        return self.fractions.astype(dtype)

    def flow(self, t, Q):
        system = self.system
        dtype = Q.dtype
        sign = self.signs(dtype)
        signed = (lambda x: x) if sign is None else (lambda x: sign * x)
        s = signed(Q)  # the isospins, (D, G)
        mu = system.coupling(t).astype(dtype)
        angles, meet = system.angles, system.encounter
        f = self.fractions.astype(dtype)

        def sums(values, power):
            """`sum_h f_h W_gh values_h` (`W2` for `power` 2) of `values` `(k, G)`, linear in
            the groups where the angle model's coupling has low rank (`group_sums`)."""
            return angles.group_sums(f, values, power)

        def interaction(s):
            pull = sums(s, 1)
            if self.n is None:
                return meet.forward_field(mu * pull)
            diagonal = angles.group_diagonal(s.shape[1]).astype(dtype)
            return meet.forward_field(mu * (self.n * pull - diagonal * s) / (self.n - 1))

        nf = self._flavours(Q)
        x = lambda a, b: star_major(a, b, nf)
        H_int = interaction(s)
        dQ = x(self._one_body(t, dtype) + H_int, Q)
        if self.collision.present:
            scale = 1.0 if self.n is None else self.n / (self.n - 1)
            # The encounter's second order over the partners `h`, weighted by `f_h W2_gh`
            # (those of the other species apart), in each group's own sign.
            other = None
            if sign is not None:
                anti = sign < 0
                other = jnp.where(
                    anti, sums(jnp.where(anti, 0, s), 2), sums(jnp.where(anti, s, 0), 2)
                ).T
            weight = sums(jnp.ones((1,) + s.shape[1:], dtype), 2)[0]
            ds = meet.collision_change(s.T, sign, weight, sums(s, 2).T, other, nf).T
            dQ = dQ + scale * mu * jnp.asarray(system.gamma, dtype) * signed(ds)
        tau = self.collision.step(system)
        if tau is not None:
            # -(tau/2) DF.F, F_g = H_g x s_g: DF.F = (dH_g along F) x s_g + H_g x F_g.
            F = x(H_int, s)
            dQ = dQ - (tau / 2) * (x(interaction(F), Q) + x(H_int, x(H_int, Q)))
        return dQ


class MultiAngleField(AbstractMeanField):
    r"""Per-neutrino fixed velocities (physics.md section 6), O(N) per evaluation.

    $$`\mathbf{H}_i = \omega_i \mathbf{B} + \frac{\mu}{N-1} \sum_{j \ne i} (1 - \mathbf{v}_i \cdot
    \mathbf{v}_j) \mathbf{P}_j = \omega_i \mathbf{B} + \frac{\mu}{N-1} (\mathbf{S} - v_{ia}
    \mathbf{M}_a)`$$

    with $`\mathbf{S} = \sum_j \mathbf{P}_j`$ and $`\mathbf{M}_a = \sum_j v_{ja} \mathbf{P}_j`$; the
    self-term vanishes since $`\lvert\mathbf{v}_i\rvert = 1`$.
    The collision sums `sum_j (1 - v_i.v_j)^2 (.)` factorize the same way into moments
    `sum_j v_ja v_jb (.)`.

    With `antineutrino` (one bool per particle) the state holds `Pbar` for those, the sums run
    over isospins (`P_j`, or `-Pbar_j`) and their vacuum term is `-omega_i B` (physics.md
    section 10); `system` (its angle model left isotropic: the velocities are the angles) and
    `collision` as in `GroupField`. Every particle weighs `1/(N-1)` (a finite gas, the self-pair
    left out); for weighted directions (a distribution on a grid) use `GroupField` with
    `Beams(directions)` or `Axisymmetric(u)` and the weights as `fractions`.
    """

    velocities: Float[Array, "N 3"]
    system: System
    collision: AbstractCollision

    def __init__(self, omegas, velocities, system: System, collision="none", dt=None,
                 antineutrino=None):  # fmt: skip
        self.velocities = velocities
        self.collision = collision_term(collision, dt)
        self.system = check_instance(system, System, "MultiAngleField: system").given(
            omegas, antineutrino
        )

    def __check_init__(self):
        _check_system(self.system, self.collision, "MultiAngleField", True)
        if not isinstance(self.system.angles, Isotropic):
            raise ValueError(
                f"System.angles={self.system.angles!r}: MultiAngleField takes its angles from "
                "its velocities; leave the system's angle model at 'isotropic'"
            )
        v = concrete(self.velocities)
        if v is not None and (
            v.ndim != 2 or v.shape[-1] != 3 or not np.allclose(np.linalg.norm(v, axis=-1), 1.0)
        ):
            raise ValueError(
                f"velocities must be unit vectors of shape (N, 3), one per angle, got shape "
                f"{v.shape}" + ("" if v.ndim != 2 else " (not all of length 1)")
            )

    def state_shape(self, D):
        return (self.system.n_classes, D)

    def weights(self, dtype):
        return jnp.ones((self.system.n_classes,), dtype)

    def _interaction(self, s, t):
        """`mu/(N-1) sum_j (1 - v_i.v_j) s_j` of isospins `s` `(D, N)`, component-major."""
        v = self.velocities.astype(s.dtype)
        N = s.shape[1]
        total = s @ jnp.ones((N,), s.dtype)
        return self.system.encounter.forward_field(
            self.system.coupling(t).astype(s.dtype) / (N - 1) * (total[:, None] - (s @ v) @ v.T)
        )

    def interaction(self, P, t=0.0):
        """`mu/(N-1) sum_j (1 - v_i.v_j) s_j`, shape `(N, D)`, with `s_j` the isospins
        (`P_j`, or `-Pbar_j` for an antineutrino)."""
        sign = self.signs(P.dtype)
        s = P.T if sign is None else sign * P.T
        return self._interaction(s, t).T

    def flow(self, t, Q):
        dtype = Q.dtype
        v = self.velocities.astype(dtype)
        N = Q.shape[1]
        system = self.system
        sign = self.signs(dtype)
        nf = self._flavours(Q)
        x = lambda a, b: star_major(a, b, nf)
        s = Q if sign is None else sign * Q
        H_int = self._interaction(s, t)
        dQ = x(self._one_body(t, dtype) + H_int, Q)
        if not self.collision.present:
            return dQ

        def weighted(s):
            """`sum_j w_ij s_j`, `w_ij = (1 - v_i.v_j)^2 = 1 - 2 v_i.v_j + (v_i.v_j)^2`, of
            `s` `(k, N)`."""
            second = jnp.einsum("kj,ja,jb->kab", s, v, v)
            total = s @ jnp.ones((N,), dtype)
            return total[:, None] - 2 * (s @ v) @ v.T + jnp.einsum("kab,ia,ib->ki", second, v, v)

        # The encounter's second order over the partners' isospins `s_j` (those of the other
        # species apart, as in `GroupField`), in each particle's own sign.
        total = N - 2 * v @ jnp.sum(v, axis=0) + jnp.einsum("ia,ab,ib->i", v, v.T @ v, v)
        other = None
        if sign is not None:
            anti = sign < 0
            other = jnp.where(
                anti, weighted(jnp.where(anti, 0, s)), weighted(jnp.where(anti, s, 0))
            ).T
        ds = system.encounter.collision_change(s.T, sign, total, weighted(s).T, other, nf).T
        mu = system.coupling(t).astype(dtype)
        rate = mu * jnp.asarray(system.gamma, dtype) / (N - 1)
        dQ = dQ + rate * (ds if sign is None else sign * ds)
        tau = self.collision.step(system)
        if tau is not None:
            F = x(H_int, Q)
            dH = self._interaction(F if sign is None else sign * F, t)  # d H_int along F
            dQ = dQ - (tau / 2) * (x(dH, Q) + x(H_int, F))
        return dQ


def lepton_number(
    P: Float[Array, "... n 3"], B: ArrayLike, weights: ArrayLike | None = None
) -> Array:
    """`B . sum_i w_i P_i` (weights default to 1: the gas's lepton number)."""
    total = jnp.sum(P if weights is None else jnp.asarray(weights)[:, None] * P, axis=-2)
    return total @ jnp.asarray(B, dtype=P.dtype)


def multi_angle_energy(field: MultiAngleField, P: Float[Array, "... N 3"]) -> Array:
    """`sum_i omega_i B.P_i + mu/(2(N-1)) sum_{i!=j} (1 - v_i.v_j) P_i.P_j`, conserved by the
    pure mean field; O(N) via `|S|^2 - |M|_F^2`."""
    N = P.shape[-2]
    S = jnp.sum(P, axis=-2)
    M = jnp.einsum("ja,...jb->...ab", field.velocities, P)
    system = field.system
    vacuum = jnp.einsum("j,...jb,b->...", system.omegas, P, system.B)
    pairs = jnp.sum(S**2, axis=-1) - jnp.sum(M**2, axis=(-2, -1))
    return vacuum + system.mu / (2 * (N - 1)) * pairs


def group_energy(field: GroupField, P: Float[Array, "... G 3"]) -> Array:
    """Energy per neutrino of the group-reduced mean field (`n=None`):
    `sum_g f_g omega_g B.P_g + (mu/2) |Pbar|^2`."""
    Pbar = jnp.einsum("g,...gb->...b", field.fractions, P)
    system = field.system
    vacuum = jnp.einsum("g,g,...gb,b->...", field.fractions, system.omegas, P, system.B)
    return vacuum + system.mu / 2 * jnp.sum(Pbar**2, axis=-1)


class MeanFieldSolution(eqx.Module):
    """`ts` `(T,)` and states `P` `(T, *state shape)`; `stats` are diffrax's solver statistics."""

    ts: Array
    P: Array
    stats: dict


def mean_field(field, name: str = "field") -> AbstractMeanField:
    """`field`, refused unless it is a mean field of this package."""
    if not isinstance(field, AbstractMeanField):
        raise ValueError(
            f"{name} must be a mean field (ForegroundField, GroupField or MultiAngleField), "
            f"got {type(field).__name__}"
        )
    return field


def solve_meanfield(
    field: AbstractMeanField,
    P0: Float[ArrayLike, "... 3"],
    ts: Float[ArrayLike, " T"],
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    solver: diffrax.AbstractSolver | None = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    max_steps: int = 1_000_000,
    progress: bool = False,
) -> MeanFieldSolution:
    """Solve `dP/dt = field(t, P)` from `P0` at `ts[0]`, saving at `ts` (increasing): `field` a
    mean field (`ForegroundField`, `GroupField`, `MultiAngleField`) or a plain function
    `f(t, P, args)`.

    A mean field is integrated in its component-major layout (`AbstractMeanField.major`), by
    `default_solver` (from 3000 state components on an eighth-order Runge-Kutta method with its
    stages fused, `FusedDopri8`, whose steps land on the save times `ts`, or with opacities
    diffrax's `Dopri8`; below, where compiling dominates, diffrax's `Tsit5`) or any diffrax
    solver given, with a PID controller. `rtol`
    and `atol` are traced, as are the field's numbers: a new tolerance, coupling, frequency or
    weight of the same shapes reuses the compiled solve. `adjoint` defaults to diffrax's
    `RecursiveCheckpointAdjoint` (checkpointed reverse-mode gradients through the solve).
    `progress=True` prints diffrax's text progress meter. Works under `jit`, `vmap` and `grad`;
    a solve that does not reach `ts[-1]` in `max_steps` steps raises.
    """
    P0 = check_if_concrete(jnp.asarray(P0), "P0")
    check_if_concrete(ts, "ts")
    # A mean field of the package, or any plain function `f(t, P, args)` (an equation to
    # compare with); another object is refused.
    plain = callable(field) and not isinstance(field, eqx.Module)
    expected = None if plain else mean_field(field).shape
    if expected is not None and P0.shape != expected:
        raise ValueError(
            f"P0 must have the field's shape {expected} (one Bloch vector per group or angle of "
            f"{type(field).__name__}), got {P0.shape}"
        )
    if not jnp.issubdtype(P0.dtype, jnp.floating):
        P0 = P0.astype(jnp.result_type(float))
    ts = jnp.asarray(ts, dtype=P0.dtype)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"ts must be a non-empty 1-D array of times, got shape {ts.shape}")
    tolerances = {
        name: check_positive(check_scalar(value, name, P0.dtype), name)
        for name, value in (("rtol", rtol), ("atol", atol))
    }
    if not plain and field.system.opacities is not None:
        field.system.opacities.check_scale(ts)
    meter = diffrax.TextProgressMeter() if progress else diffrax.NoProgressMeter()
    # Component-major: `(D, K)` for states `(K, D)`.
    to_major = (lambda P: P) if plain else (lambda P: jnp.moveaxis(P, -1, 0))
    from_major = (lambda Y: Y) if plain else (lambda Y: jnp.moveaxis(Y, 1, -1))
    solver = solver or default_solver(P0.size, plain or field.system.opacities is None)
    # The fused methods' dense output is third order: their steps land on the save times.
    landing = ts if isinstance(solver, AbstractFusedRungeKutta) else None
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field if plain else field.major),
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=to_major(P0),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(**tolerances, step_ts=landing),
        adjoint=adjoint or diffrax.RecursiveCheckpointAdjoint(),
        max_steps=max_steps,
        progress_meter=meter,
    )
    return MeanFieldSolution(ts=solution.ts, P=from_major(solution.ys), stats=solution.stats)
