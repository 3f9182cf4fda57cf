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
from jaxtyping import Array, ArrayLike, Float

from ._angles import AbstractFreshAngleModel, Isotropic
from ._checks import check_option
from ._master import master_rates

COLLISIONS = ("none", "stochastic", "deterministic")


class ForegroundField(eqx.Module):
    """Foreground neutrino in a uniform background `P_b` (physics.md section 5).

    `collision="none"`: `dP/dt = (omega B + mu P_b) x P` (mean field). `collision="stochastic"`:
    the master equation `dP/dt = (omega B + mu_R P_b) x P - Gamma (P - P_b)` with the exact
    isotropic rates of `master_rates`.
    """

    P_b: Float[Array, "3"]
    mu: Float[Array, ""]
    omega: Float[Array, ""]
    B: Float[Array, "3"]
    gamma: Float[Array, ""]
    collision: str = eqx.field(static=True, default="none")

    def __check_init__(self):
        check_option(self.collision, "collision", ("none", "stochastic"))

    def __call__(self, t, P, args=None):
        if self.collision == "none":
            return jnp.cross(self.omega * self.B + self.mu * self.P_b, P)
        mu_R, Gamma = master_rates(self.gamma, self.mu)
        return jnp.cross(self.omega * self.B + mu_R * self.P_b, P) - Gamma * (P - self.P_b)


class GroupField(eqx.Module):
    """Angles drawn afresh at every encounter (`angles`: `Isotropic()` by default, or
    `FixedAngle(theta)`), reduced to groups: the state is the group vectors `(G, 3)`, every
    member of a group following its group's vector.

    `H_g = omega_g B + <x> mu (N Pbar - P_g)/(N - 1)` (`n=None`: `N -> infinity`,
    `H_g = omega_g B + <x> mu Pbar`), `Pbar = sum_g f_g P_g`. Collision:
    `-<x^2> mu gamma (P_g - Pbar)` (the finite-N factor `N/(N-1)` included), plus
    `-<x>^2 (mu gamma/2) Pbar x (Pbar x P_g)` for `"deterministic"` (physics.md section 6);
    `<x>`, `<x^2>` are the angle model's (1 and 4/3 for isotropic angles).
    """

    fractions: Float[Array, " G"]
    omegas: Float[Array, " G"]
    mu: Float[Array, ""]
    gamma: Float[Array, ""]
    B: Float[Array, "3"]
    collision: str = eqx.field(static=True, default="none")
    n: int | None = eqx.field(static=True, default=None)
    angles: AbstractFreshAngleModel = Isotropic()
    dt: Float[Array, ""] | None = None

    def __check_init__(self):
        check_option(self.collision, "collision", COLLISIONS)
        if not isinstance(self.angles, AbstractFreshAngleModel):
            raise ValueError(
                f"angles={self.angles!r}: GroupField takes angles drawn afresh at every "
                "encounter (Isotropic() or FixedAngle(theta)); for fixed velocities use "
                "MultiAngleField"
            )

    def __call__(self, t, P, args=None):
        Pbar = self.fractions @ P
        x, x2 = self.angles.mean_x().astype(P.dtype), self.angles.mean_x2().astype(P.dtype)
        if self.n is None:
            coupling, scale = x * self.mu * jnp.broadcast_to(Pbar, P.shape), 1.0
        else:
            coupling = x * self.mu * (self.n * Pbar - P) / (self.n - 1)
            scale = self.n / (self.n - 1)
        dP = jnp.cross(self.omegas[:, None] * self.B + coupling, P)
        if self.collision != "none":
            dP = dP - x2 * scale * self.mu * self.gamma * (P - Pbar)
        tau = _step(self)
        if tau is not None:
            # -(tau/2) DF.F with F_g = <x> mu Pbar x P_g and dPbar = 0 along F.
            dP = dP - x**2 * (tau * self.mu**2 / 2) * jnp.cross(Pbar, jnp.cross(Pbar, P))
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
    """

    omegas: Float[Array, " N"]
    velocities: Float[Array, "N 3"]
    mu: Float[Array, ""]
    gamma: Float[Array, ""]
    B: Float[Array, "3"]
    collision: str = eqx.field(static=True, default="none")
    dt: Float[Array, ""] | None = None

    def __check_init__(self):
        check_option(self.collision, "collision", COLLISIONS)

    def interaction(self, P):
        """`mu/(N-1) sum_j (1 - v_i.v_j) P_j`, shape `(N, 3)`."""
        v = self.velocities
        N = P.shape[0]
        return self.mu / (N - 1) * (jnp.sum(P, axis=0) - v @ (v.T @ P))

    def __call__(self, t, P, args=None):
        v = self.velocities
        N = P.shape[0]
        H_int = self.interaction(P)
        dP = jnp.cross(self.omegas[:, None] * self.B + H_int, P)
        if self.collision == "none":
            return dP
        # w_ij = (1 - v_i.v_j)^2 = 1 - 2 v_i.v_j + (v_i.v_j)^2
        second = jnp.einsum("ja,jb,jc->abc", v, v, P)
        weighted = (
            jnp.sum(P, axis=0) - 2 * v @ (v.T @ P) + jnp.einsum("ia,ib,abc->ic", v, v, second)
        )
        total = N - 2 * v @ jnp.sum(v, axis=0) + jnp.einsum("ia,ab,ib->i", v, v.T @ v, v)
        dP = dP - self.mu * self.gamma / (N - 1) * (total[:, None] * P - weighted)
        tau = _step(self)
        if tau is not None:
            F = jnp.cross(H_int, P)
            dH = self.interaction(F)  # d H_int / dt along F
            DF_F = jnp.cross(dH, P) + jnp.cross(H_int, F)
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
    P0 = jnp.asarray(P0)
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
