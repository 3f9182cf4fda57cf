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

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .._foreground.master import master_rates
from .._physics.flavours import (
    default_matter_axis,
    dstar_array,
    flavour_axis,
    flavour_count,
    star_array,
)
from .._physics.profiles import AbstractProfile
from .._sampling.angles import AbstractAngleModel, Isotropic
from .._support.checks import check_if_concrete, check_option, concrete

COLLISIONS = ("none", "stochastic", "deterministic")
ORDERINGS = ("normal", "inverted")


# The one-body field of each species (physics.md section 10), in the physical `P` (neutrinos)
# and `Pbar` (antineutrinos): `dP/dt = (+omega B + lambda L + mu D) x P`,
# `dPbar/dt = (-omega B + lambda L + mu D) x Pbar`, `D = sum_nu P - sum_nubar Pbar` (weighted);
# the inverted ordering flips every `omega`.


def _signs(antineutrino, dtype):
    """`-1` for each antineutrino, `+1` for each neutrino (None: all neutrinos)."""
    if antineutrino is None:
        return None
    return jnp.where(jnp.asarray(antineutrino), -1.0, 1.0).astype(dtype)


def _at(value, t):
    """A coupling at time `t`: a profile called, a number as it is."""
    return value(t) if isinstance(value, AbstractProfile) else value


def _one_body(field, t, omegas, signs, dtype):
    """`(+/- omega) B + lambda(t) L` per particle `(n, D)`."""
    frequency = omegas if signs is None else signs * omegas
    if field.ordering == "inverted":
        frequency = -frequency
    H = frequency[:, None] * field.B
    if field.matter is not None:
        n = flavour_count(field.B.shape[-1], "B")
        L = jnp.asarray(flavour_axis(n) if field.L is None else field.L, dtype)
        H = H + _at(field.matter, t) * L
    return H


def _flavours(field, P) -> int:
    """The flavour count of a field's states `P` (`(..., D)`), which `B` must match."""
    n = flavour_count(P.shape[-1], "P")
    if field.B.shape[-1] != P.shape[-1]:
        raise ValueError(
            f"B has {field.B.shape[-1]} components but the states have {P.shape[-1]}: both "
            "3 (two flavours) or both 8 (three flavours, B = pmns_vacuum(...))"
        )
    if n > 2 and field.ordering != "normal":
        raise ValueError(
            "ordering='inverted' is two-flavour only; for three flavours pass "
            "B=pmns_vacuum('inverted', ...)"
        )
    return n


def state_shape(field, D: int) -> tuple | None:
    """The state shape a mean field takes: `(G, D)` or `(N, D)` for fields with per-group or
    per-angle frequencies, `(D,)` for the foreground field; None for another vector field."""
    omegas = getattr(field, "omegas", None)
    if omegas is not None:
        return (int(jnp.shape(omegas)[0]), D)
    if getattr(field, "P_b", None) is not None:
        return (D,)
    return None


def _check_options(field):
    check_option(field.collision, "collision", COLLISIONS)
    check_option(field.ordering, "ordering", ORDERINGS)
    if field.matter is not None and field.L is None:
        default_matter_axis(field.B, flavour_count(jnp.shape(field.B)[-1], "B"))
    if field.collision == "deterministic" and isinstance(field.mu, AbstractProfile):
        raise ValueError(
            "collision='deterministic' needs mu as a number: a deterministic round lasts "
            "gamma / mu, which a coupling mu(t) does not fix"
        )


class ForegroundField(eqx.Module):
    """Foreground neutrino in a uniform background `P_b` (physics.md section 5).

    `collision="none"`: `dP/dt = (omega B + mu P_b) x P` (mean field). `collision="stochastic"`:
    the master equation `dP/dt = (omega B + mu_R P_b) x P - Gamma (P - P_b)` with the exact
    isotropic rates of `master_rates`. Three flavours: `P_b`, `B` and the state of 8
    components, `h * P` for `h x P` (physics.md section 11).
    """

    P_b: Float[Array, " D"]
    mu: Float[Array, ""]
    omega: Float[Array, ""]
    B: Float[Array, " D"]
    gamma: Float[Array, ""]
    collision: str = eqx.field(static=True, default="none")

    def __check_init__(self):
        check_option(self.collision, "collision", ("none", "stochastic"))
        if jnp.shape(self.B)[-1:] != jnp.shape(self.P_b)[-1:]:
            raise ValueError(
                f"B and P_b must have the same length, 3 (two flavours) or 8 (three), got "
                f"{jnp.shape(self.B)} and {jnp.shape(self.P_b)}"
            )

    def __call__(self, t, P, args=None):
        n = flavour_count(P.shape[-1], "P")
        if self.collision == "none":
            return star_array(self.omega * self.B + self.mu * self.P_b, P, n)
        mu_R, Gamma = master_rates(self.gamma, self.mu)
        return star_array(self.omega * self.B + mu_R * self.P_b, P, n) - Gamma * (P - self.P_b)


class GroupField(eqx.Module):
    """A gas reduced to groups (every member of a group following its group's vector), for
    angle models whose `x` depends on the pair's groups only: angles drawn afresh at every
    encounter (`Isotropic()` by default, or `FixedAngle(theta)`), or `Beams(directions)`.
    The state is the group vectors `(G, D)`: `P_g` for a neutrino group, `Pbar_g` for an
    antineutrino group (`antineutrino`, one bool per group); `D = 3` for two flavours, 8 for
    three (then `B` is `pmns_vacuum(...)` and `x` below the product `f_abc`, physics.md
    section 11).

    With `s_g = P_g` or `-Pbar_g` and `W_gh`, `W2_gh` the mean of `x`, `x^2` over pairs of
    groups `g`, `h` (`angles.group_weights`; `<x>`, `<x^2>` for fresh angles):
    `H_g = (+/- omega_g) B + lambda(t) L + mu(t) (N sum_h f_h W_gh s_h - W_gg s_g)/(N - 1)`
    (`n=None`: `N -> infinity`), `dP_g/dt = H_g x P_g` (physics.md section 10). Collision:
    `-mu gamma N/(N-1) sum_h f_h W2_gh (P_g - sign_g s_h)`, plus for `"deterministic"` (or
    `"stochastic"` with `dt`) the finite step's `-(tau/2) DF.F` (physics.md section 6), which
    for fresh angles is `-<x>^2 (mu gamma/2) D x (D x P_g)`, `D = sum_h f_h s_h`. With three
    flavours a nu-nubar pair's collision term has one more part,
    `+(3/2) mu gamma N/(N-1) sum_h' f_h W2_gh d(s_g, s_h)` over the groups `h` of the other
    species (physics.md section 11).

    `ordering="inverted"` flips every `omega`; `matter` (a number or a profile of time) along
    the flavour axis `L` (default `(0, 0, 1)`); `mu` a number or a profile of time.
    """

    fractions: Float[Array, " G"]
    omegas: Float[Array, " G"]
    mu: "Float[Array, ''] | AbstractProfile"
    gamma: Float[Array, ""]
    B: Float[Array, " D"]
    collision: str = eqx.field(static=True, default="none")
    n: int | None = eqx.field(static=True, default=None)
    angles: AbstractAngleModel = Isotropic()
    dt: Float[Array, ""] | None = None
    antineutrino: Bool[Array, " G"] | None = None
    ordering: str = eqx.field(static=True, default="normal")
    matter: "Float[Array, ''] | AbstractProfile | None" = None
    L: Float[Array, " D"] | None = None

    def __check_init__(self):
        _check_options(self)
        if not self.angles.by_group:
            raise ValueError(
                f"angles={self.angles!r}: GroupField takes angle models whose x depends on the "
                "groups only (Isotropic(), FixedAngle(theta), Beams(directions)); for fixed "
                "velocities use MultiAngleField"
            )
        self.angles.group_weights(self.fractions)  # an angle model of other groups: refused

    def __call__(self, t, P, args=None):
        sign = _signs(self.antineutrino, P.dtype)
        signed = (lambda x: x) if sign is None else (lambda x: sign[:, None] * x)
        s = signed(P)  # the isospins
        mu = _at(self.mu, t)
        W, W2 = (w.astype(P.dtype) for w in self.angles.group_weights(self.fractions))
        f = self.fractions

        def interaction(s):
            pull = (f[None, :] * W) @ s
            if self.n is None:
                return mu * pull
            return mu * (self.n * pull - jnp.diagonal(W)[:, None] * s) / (self.n - 1)

        nf = _flavours(self, P)
        x = lambda a, b: star_array(a, b, nf)
        H_int = interaction(s)
        dP = x(_one_body(self, t, self.omegas, sign, P.dtype) + H_int, P)
        if self.collision != "none":
            scale = 1.0 if self.n is None else self.n / (self.n - 1)
            # sum_h f_h W2_gh (s_g - s_h), in each group's own sign.
            towards = signed((f[None, :] * W2) @ s)
            dP = dP - scale * mu * self.gamma * (jnp.sum(f * W2, axis=1)[:, None] * P - towards)
            if nf > 2 and sign is not None:
                # nu-nubar pairs: (n/2) d(s_g, sum_h' f_h W2_gh s_h) over the other species,
                # the same in `P_g` (its sign squared).
                other = (sign[:, None] != sign[None, :]).astype(P.dtype)
                partners = (f[None, :] * W2 * other) @ s
                dP = dP + scale * mu * self.gamma * (nf / 2) * dstar_array(s, partners, nf)
        tau = _step(self)
        if tau is not None:
            # -(tau/2) DF.F, F_g = H_g x s_g: DF.F = (dH_g along F) x s_g + H_g x F_g.
            F = x(H_int, s)
            dP = dP - (tau / 2) * (x(interaction(F), P) + x(H_int, x(H_int, P)))
        return dP


def _step(field):
    """The length `tau` of a schedule step whose second-order term `-(tau/2) DF.F` the field
    carries: a deterministic round `gamma / mu`, the stochastic schedule's `dt` when given
    (None: the Poisson limit, no such term)."""
    if field.collision == "deterministic":
        return field.gamma / field.mu
    if field.collision == "stochastic" and field.dt is not None:
        return field.dt
    return None


class MultiAngleField(eqx.Module):
    """Per-neutrino fixed velocities (physics.md section 6), O(N) per evaluation.

    `H_i = omega_i B + mu/(N-1) sum_{j!=i} (1 - v_i.v_j) P_j = omega_i B + mu/(N-1) (S - v_i M)`
    with `S = sum_j P_j` and `M[a] = sum_j v_ja P_j`; the self-term vanishes since `|v_i| = 1`.
    The collision sums `sum_j (1 - v_i.v_j)^2 (.)` factorize the same way into moments
    `sum_j v_ja v_jb (.)`.

    With `antineutrino` (one bool per particle) the state holds `Pbar` for those, the sums run
    over isospins (`P_j`, or `-Pbar_j`) and their vacuum term is `-omega_i B` (physics.md
    section 10); `ordering`, `matter`, `L` and a profile `mu` as in `GroupField`.
    """

    omegas: Float[Array, " N"]
    velocities: Float[Array, "N 3"]
    mu: "Float[Array, ''] | AbstractProfile"
    gamma: Float[Array, ""]
    B: Float[Array, "3"]
    collision: str = eqx.field(static=True, default="none")
    dt: Float[Array, ""] | None = None
    antineutrino: Bool[Array, " N"] | None = None
    ordering: str = eqx.field(static=True, default="normal")
    matter: "Float[Array, ''] | AbstractProfile | None" = None
    L: Float[Array, " D"] | None = None

    def __check_init__(self):
        _check_options(self)
        v = concrete(self.velocities)
        if v is not None and (
            v.ndim != 2 or v.shape[-1] != 3 or not np.allclose(np.linalg.norm(v, axis=-1), 1.0)
        ):
            raise ValueError(
                f"velocities must be unit vectors of shape (N, 3), one per angle, got shape "
                f"{v.shape}" + ("" if v.ndim != 2 else " (not all of length 1)")
            )

    def interaction(self, P, t=0.0):
        """`mu/(N-1) sum_j (1 - v_i.v_j) s_j`, shape `(N, D)`, with `s_j` the isospins
        (`P_j`, or `-Pbar_j` for an antineutrino)."""
        v = self.velocities
        N = P.shape[0]
        sign = _signs(self.antineutrino, P.dtype)
        s = P if sign is None else sign[:, None] * P
        return _at(self.mu, t) / (N - 1) * (jnp.sum(s, axis=0) - v @ (v.T @ s))

    def __call__(self, t, P, args=None):
        v = self.velocities
        N = P.shape[0]
        sign = _signs(self.antineutrino, P.dtype)
        nf = _flavours(self, P)
        x = lambda a, b: star_array(a, b, nf)
        H_int = self.interaction(P, t)
        dP = x(_one_body(self, t, self.omegas, sign, P.dtype) + H_int, P)
        if self.collision == "none":
            return dP

        def weighted(s):
            """`sum_j w_ij s_j`, `w_ij = (1 - v_i.v_j)^2 = 1 - 2 v_i.v_j + (v_i.v_j)^2`."""
            second = jnp.einsum("ja,jb,jc->abc", v, v, s)
            return (
                jnp.sum(s, axis=0) - 2 * v @ (v.T @ s) + jnp.einsum("ia,ib,abc->ic", v, v, second)
            )

        # The partners' isospins `s_j`, and each particle pulled towards them in its own sign.
        s = P if sign is None else sign[:, None] * P
        pull = weighted(s)
        if sign is not None:
            pull = sign[:, None] * pull
        total = N - 2 * v @ jnp.sum(v, axis=0) + jnp.einsum("ia,ab,ib->i", v, v.T @ v, v)
        mu = _at(self.mu, t)
        dP = dP - mu * self.gamma / (N - 1) * (total[:, None] * P - pull)
        if nf > 2 and sign is not None:
            # nu-nubar pairs (as in `GroupField`): each particle's partners of the other species.
            anti = (sign < 0)[:, None]
            other = jnp.where(
                anti, weighted(jnp.where(anti, 0, s)), weighted(jnp.where(anti, s, 0))
            )
            dP = dP + mu * self.gamma / (N - 1) * (nf / 2) * dstar_array(s, other, nf)
        tau = _step(self)
        if tau is not None:
            F = x(H_int, P)
            dH = self.interaction(F, t)  # d H_int / dt along F
            DF_F = x(dH, P) + x(H_int, F)
            dP = dP - (tau / 2) * DF_F
        return dP


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
    vacuum = jnp.einsum("j,...jb,b->...", field.omegas, P, field.B)
    pairs = jnp.sum(S**2, axis=-1) - jnp.sum(M**2, axis=(-2, -1))
    return vacuum + field.mu / (2 * (N - 1)) * pairs


def group_energy(field: GroupField, P: Float[Array, "... G 3"]) -> Array:
    """Energy per neutrino of the group-reduced mean field (`n=None`):
    `sum_g f_g omega_g B.P_g + (mu/2) |Pbar|^2`."""
    Pbar = jnp.einsum("g,...gb->...b", field.fractions, P)
    vacuum = jnp.einsum("g,g,...gb,b->...", field.fractions, field.omegas, P, field.B)
    return vacuum + field.mu / 2 * jnp.sum(Pbar**2, axis=-1)


class MeanFieldSolution(eqx.Module):
    """`ts` `(T,)` and states `P` `(T, *state shape)`; `stats` are diffrax's solver statistics."""

    ts: Array
    P: Array
    stats: dict


def solve_meanfield(
    field: eqx.Module,
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
    """Solve `dP/dt = field(t, P)` from `P0` at `ts[0]`, saving at `ts` (increasing).

    Adaptive `Tsit5` with a PID controller by default; `adjoint` defaults to diffrax's
    `RecursiveCheckpointAdjoint` (reverse-mode gradients through the solve). `progress=True`
    prints diffrax's text progress meter. Works under `jit`, `vmap` and `grad`.
    """
    P0 = check_if_concrete(jnp.asarray(P0), "P0")
    check_if_concrete(ts, "ts")
    expected = state_shape(field, jnp.shape(field.B)[-1]) if hasattr(field, "B") else None
    if expected is not None and P0.shape != expected:
        raise ValueError(
            f"P0 must have the field's shape {expected} (one Bloch vector per group or angle of "
            f"{type(field).__name__}), got {P0.shape}"
        )
    ts = jnp.asarray(ts, dtype=P0.dtype)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"ts must be a non-empty 1-D array of times, got shape {ts.shape}")
    meter = diffrax.TextProgressMeter() if progress else diffrax.NoProgressMeter()
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver or diffrax.Tsit5(),
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=P0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        adjoint=adjoint or diffrax.RecursiveCheckpointAdjoint(),
        max_steps=max_steps,
        progress_meter=meter,
    )
    return MeanFieldSolution(ts=solution.ts, P=solution.ys, stats=solution.stats)
