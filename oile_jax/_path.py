"""The miscidynamic path (physics.md section 8): a gas drifting along the precession equilibria
of `_equilibrium` as its lengths |P_g| relax, its kicked discretization, and the path's start
read from a simulated gas."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._angles import angle_model
from ._checks import (
    check_nonnegative,
    check_positive,
    check_scalar,
)
from ._equilibrium import (
    _FLOAT64_HINT,
    Equilibrium,
    _check_times,
    _double,
    _ode_tolerances,
    _params,
    _residual_limit,
    precession_equilibrium,
)
from ._spec import check_count


def _path_rate(rate, gamma, mu, angles, dtype):
    """The lengths' relaxation rate: `rate` if given, else `Gamma = <x^2> mu gamma` with the
    angle model's `<x^2>` (4/3 for isotropic angles and for uncorrelated fixed velocities)."""
    if rate is not None:
        return check_nonnegative(check_scalar(rate, "rate", dtype), "rate")
    gamma = check_positive(check_scalar(gamma, "gamma", dtype), "gamma")
    return angle_model(angles).mean_x2().astype(dtype) * mu * gamma


class PathSolution(eqx.Module):
    """A miscidynamic path: `ts` `(T,)`, signed `lengths` `(T, G)`, `Omega` `(T,)`, `Q` `(T,)`,
    and the group vectors `P` `(T, G, 3)` in the co-rotating frame (`Pbar_perp` along `+x`)."""

    ts: Array
    lengths: Array
    Omega: Array
    Q: Array
    P: Array


def _target(eq: Equilibrium, omegas, Pz, mu):
    """`Hhat'_g . Pbar = (mu Q^2 + a_g Pbar_z) / h_g`: where each length relaxes to
    (physics.md section 8, (MD))."""
    a = mu * Pz - omegas - eq.Omega
    h = jnp.sqrt(a**2 + (mu * eq.Q) ** 2)
    return (mu * eq.Q**2 + a * Pz) / h


class _PathField(eqx.Module):
    fractions: Array
    omegas: Array
    Pz: Array
    mu: Array
    rate: Array

    def __call__(self, t, y, args=None):
        G = self.fractions.shape[0]
        lengths, guess = y[:G], y[G:]

        def solve(lengths):
            return precession_equilibrium(
                lengths, self.fractions, self.omegas, self.Pz, mu=self.mu, guess=guess
            )

        eq = solve(lengths)
        dp = -self.rate * (lengths - _target(eq, self.omegas, self.Pz, self.mu))
        # jvp re-traces the solve; XLA merges the two (linearize was slower).
        _, tangent = jax.jvp(
            lambda l: (lambda e: jnp.stack([e.Omega, e.Q]))(solve(l)), (lengths,), (dp,)
        )
        bad = ~eq.converged | (jnp.max(jnp.abs(eq.residual)) > _residual_limit(lengths.dtype))
        dp = eqx.error_if(
            dp,
            bad,
            "miscidynamic_path lost its equilibrium branch: Newton did not converge from the "
            "previous (Omega, Q) (a fold of the branch, or its end at Q -> 0); shorten the path "
            "or re-seed it",
        )
        return jnp.concatenate([dp, tangent])


def miscidynamic_path(
    lengths: Float[ArrayLike, " G"],
    fractions: Float[ArrayLike, " G"],
    omegas: Float[ArrayLike, " G"],
    Pz: Float[ArrayLike, ""],
    ts: Float[ArrayLike, " T"],
    *,
    gamma: Float[ArrayLike, ""],
    mu: Float[ArrayLike, ""] = 1.0,
    rate: Float[ArrayLike, ""] | None = None,
    guess: tuple[float, float] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    angles="isotropic",
) -> PathSolution:
    """Integrate the slow miscidynamic dynamics (physics.md section 8, (MD)) from signed
    lengths `p_g` at `ts[0]`, saving at `ts`:

        dp_g/dt = -Gamma (p_g - (mu Q^2 + a_g Pbar_z) / h_g),   Gamma = <x^2> mu gamma by default,

    with `(Omega, Q)` re-solved from SC1-SC2 at every stage (Newton warm-started from the
    tracked values, which follow the branch along the implicit derivative). `guess` seeds the
    branch (default: the best one of `equilibrium_branches`). A lost branch raises an error.
    `<x^2>` is that of `angles` (4/3 for the default isotropic angles; `rate` overrides Gamma).
    `ts`: at least two strictly increasing times. `rtol`, `atol`: the ODE solver's tolerances
    (default 1e-8, 1e-10 in float64; 1e-5, 1e-7 in float32).
    """
    params = _params(lengths, fractions, omegas, Pz, mu)
    lengths, fractions, omegas, Pz, mu = params
    rate = _path_rate(rate, gamma, mu, angles, lengths.dtype)
    default_rtol, default_atol = _ode_tolerances(lengths.dtype)
    rtol, atol = rtol or default_rtol, atol or default_atol
    start = precession_equilibrium(lengths, fractions, omegas, Pz, mu=mu, guess=guess)
    start_Omega = eqx.error_if(
        start.Omega,
        ~start.converged | (jnp.max(jnp.abs(start.residual)) > _residual_limit(lengths.dtype)),
        "miscidynamic_path: no precession equilibrium at the starting lengths from this guess "
        "(check that |Pz| <= sum_g f_g |p_g| and seed the branch with guess=(Omega, Q))"
        + ("" if _double(lengths.dtype) else _FLOAT64_HINT),
    )
    ts = _check_times(ts, lengths.dtype)
    y0 = jnp.concatenate([lengths, jnp.stack([start_Omega, start.Q])])

    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(_PathField(fractions, omegas, Pz, mu, rate)),
        diffrax.Tsit5(),
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=100_000,
    )
    G = fractions.shape[0]
    path_lengths = solution.ys[:, :G]
    eqs = jax.vmap(lambda l, g: precession_equilibrium(l, fractions, omegas, Pz, mu=mu, guess=g))(
        path_lengths, solution.ys[:, G:]
    )
    return PathSolution(ts=ts, lengths=path_lengths, Omega=eqs.Omega, Q=eqs.Q, P=eqs.P)


def kicked_path(
    lengths,
    fractions,
    omegas,
    Pz,
    *,
    gamma,
    kick_time,
    n_kicks: int,
    mu=1.0,
    rate=None,
    guess=None,
    angles="isotropic",
) -> PathSolution:
    """The poster's discrete recipe: from an equilibrium, change the lengths by one relaxation
    step of duration `kick_time` (`p -> p - Gamma kick_time (p - Hhat'.Pbar)`), find the new
    equilibrium with the new lengths (warm start), repeat `n_kicks` times. Converges to
    `miscidynamic_path` as `kick_time -> 0` (first order). `rate` and `angles`: as there."""
    params = _params(lengths, fractions, omegas, Pz, mu)
    lengths, fractions, omegas, Pz, mu = params
    rate = _path_rate(rate, gamma, mu, angles, lengths.dtype)
    n_kicks = check_count(n_kicks, "n_kicks")
    kick_time = check_positive(check_scalar(kick_time, "kick_time", lengths.dtype), "kick_time")
    start = precession_equilibrium(lengths, fractions, omegas, Pz, mu=mu, guess=guess)

    def kick(eq_and_lengths, _):
        eq, p = eq_and_lengths
        p = p - rate * kick_time * (p - _target(eq, omegas, Pz, mu))
        eq = precession_equilibrium(p, fractions, omegas, Pz, mu=mu, guess=(eq.Omega, eq.Q))
        return (eq, p), (p, eq)

    _, (ps, eqs) = jax.lax.scan(kick, (start, lengths), None, length=n_kicks)
    join = lambda first, rest: jnp.concatenate([first[None], rest])
    return PathSolution(
        ts=kick_time * jnp.arange(n_kicks + 1, dtype=lengths.dtype),
        lengths=join(lengths, ps),
        Omega=join(start.Omega, eqs.Omega),
        Q=join(start.Q, eqs.Q),
        P=join(start.P, eqs.P),
    )


class GasPrecessionState(eqx.Module):
    """The precession variables of a simulated gas at one time (see `gas_precession_state`)."""

    lengths: Array
    Pz: Array
    Omega: Array
    Q: Array


def gas_precession_state(
    ts, group_mean, fractions, omegas, *, index: int, window: int = 5, mu=1.0
) -> GasPrecessionState:
    """Read the miscidynamic variables off a simulated gas (mass basis): `Pbar_z` (the conserved
    lepton number per neutrino), `Q = |Pbar_perp|`, `Omega` from the unwrapped phase of
    `Pbar_perp` (least-squares slope over `index +- window` saves), and signed lengths
    `p_g = |<P_g>| sign(<P_g> . H'_g)`. `group_mean` `(S, G, 3)`, `ts` `(S,)`.
    Feed them to `miscidynamic_path(lengths, fractions, omegas, Pz, ..., guess=(Omega, Q))`."""
    ts, group_mean = np.asarray(ts, dtype=float), np.asarray(group_mean, dtype=float)
    fractions, omegas = np.asarray(fractions, dtype=float), np.asarray(omegas, dtype=float)
    if group_mean.ndim != 3 or group_mean.shape[-1] != 3 or group_mean.shape[0] != ts.shape[0]:
        raise ValueError(f"group_mean must have shape (len(ts), G, 3), got {group_mean.shape}")
    lo, hi = max(0, index - window), min(len(ts), index + window + 1)
    if hi - lo < 3:
        raise ValueError(
            f"index={index} with window={window} leaves fewer than 3 saves to measure Omega"
        )
    Pbar = np.einsum("g,sgi->si", fractions, group_mean)
    phase = np.unwrap(np.arctan2(Pbar[:, 1], Pbar[:, 0]))
    Omega = np.polyfit(ts[lo:hi], phase[lo:hi], 1)[0]
    Q = np.linalg.norm(Pbar[index, :2])
    Pz = Pbar[index, 2]
    a = mu * Pz - omegas - Omega
    P = group_mean[index]
    # H'_g in the frame of the current Pbar_perp direction.
    perp = Pbar[index, :2] / Q
    along = P[:, 0] * perp[0] + P[:, 1] * perp[1]
    sign = np.sign(a * P[:, 2] + mu * Q * along)
    lengths = sign * np.linalg.norm(P, axis=-1)
    return GasPrecessionState(*(jnp.asarray(x) for x in (lengths, Pz, Omega, Q)))


def path_from_gas(
    ts, group_mean, fractions, omegas, *, start: float, gamma, mu=1.0
) -> tuple[GasPrecessionState, PathSolution]:
    """The miscidynamic path seeded from a simulated gas (mass basis): the precession state at
    the save nearest `start` (`gas_precession_state`) seeds `miscidynamic_path` on that branch,
    saved at the gas's save times from there on. `group_mean` `(S, G, 3)`, `ts` `(S,)`.
    Returns `(state, path)`; `path.ts[0]` is the seed's time."""
    ts = np.asarray(ts, dtype=float)
    index = int(np.argmin(np.abs(ts - start)))
    state = gas_precession_state(ts, group_mean, fractions, omegas, index=index, mu=mu)
    path = miscidynamic_path(
        state.lengths,
        jnp.asarray(fractions),
        jnp.asarray(omegas),
        state.Pz,
        jnp.asarray(ts[index:]),
        gamma=gamma,
        mu=mu,
        guess=(state.Omega, state.Q),
    )
    return state, path
