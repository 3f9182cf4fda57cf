"""The miscidynamic path (physics.md section 8): a gas drifting along the precession equilibria
of `_equilibrium` as its lengths |P_g| relax, its kicked discretization, and the path's start
read from a simulated gas."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._sampling.angles import angle_model
from .._sampling.spec import check_count
from .._support.checks import (
    as_dtype,
    check_nonnegative,
    check_positive,
    check_scalar,
    concrete,
)
from .._support.programs import stored_program
from .equilibrium import (
    _FLOAT64_HINT,
    Equilibrium,
    _check_times,
    _double,
    _ode_tolerances,
    _params,
    _residual,
    _residual_limit,
    _tolerances,
    equilibrium_branches,
    precession_equilibrium,
    solve_equilibrium,
)

_MAX_STEPS = 100_000


def _path_rate(rate, gamma, mu, angles, dtype):
    """The lengths' relaxation rate: `rate` if given, else `Gamma = <x^2> mu gamma` with the
    angle model's `<x^2>` (4/3 for isotropic angles and for uncorrelated fixed velocities)."""
    if rate is not None:
        return check_nonnegative(check_scalar(rate, "rate", dtype), "rate")
    gamma = check_positive(check_scalar(gamma, "gamma", dtype), "gamma")
    x2 = as_dtype(jnp.asarray(angle_model(angles).mean_x2()), jnp.dtype(dtype))
    values = [concrete(v) for v in (x2, mu, gamma)]
    if any(v is None for v in values):
        return x2 * mu * gamma
    return jnp.asarray(values[0] * values[1] * values[2])  # on the host: no program


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


_NEWTON_STEPS = 256
# The path program's verdicts (`status`), and what a failure tells the user.
_LOST = (
    "miscidynamic_path lost its equilibrium branch{where}: Newton did not converge from the "
    "previous (Omega, Q) (a fold of the branch, or its end at Q -> 0); shorten the path or "
    "re-seed it"
)
_NO_START = (
    "miscidynamic_path: no precession equilibrium at the starting lengths from this guess "
    "(check that |Pz| <= sum_g f_g |p_g| and seed the branch with guess=(Omega, Q))"
)
_STEPS = (
    "miscidynamic_path: the ODE solver reached its limit of {max_steps} steps in one save "
    "interval{where}; add save times (ts) or loosen rtol/atol"
)


def _off_branch(eq: Equilibrium, dtype):
    """Whether Newton failed to find the equilibrium (no convergence, or a residual above the
    accepted one)."""
    return ~eq.converged | (jnp.max(jnp.abs(eq.residual)) > _residual_limit(dtype))


class _PathField(eqx.Module):
    fractions: Array
    omegas: Array
    Pz: Array
    mu: Array
    rate: Array

    def __call__(self, t, y, args=None):
        G = self.fractions.shape[0]
        lengths, guess = y[:G], y[G:]
        rtol, atol = _tolerances(lengths.dtype)

        params = (lengths, self.fractions, self.omegas, self.Pz, self.mu)
        eq = solve_equilibrium(params, guess, rtol, atol, _NEWTON_STEPS)
        dp = -self.rate * (lengths - _target(eq, self.omegas, self.Pz, self.mu))
        # (Omega, Q) follow the branch by the implicit function theorem: dy = -J_y^-1 dr/dp dp,
        # with J_y the 2x2 Jacobian of SC1-SC2 at the root (which depend on Q through Q^2).
        y = jnp.stack([eq.Omega, eq.Q])
        J_y = jax.jacfwd(_residual)(y, params)
        _, r_p = jax.jvp(lambda p: _residual(y, (p, *params[1:])), (lengths,), (dp,))
        tangent = -jnp.linalg.solve(J_y, r_p)
        # Off the branch the derivative is NaN: the solver rejects the step and shrinks it
        # until it stops at its smallest step (dt_min_reached), which the path reports as a
        # lost branch. (A runtime check here would be a host callback in every stage.)
        return jnp.where(_off_branch(eq, lengths.dtype), jnp.nan, jnp.concatenate([dp, tangent]))


@stored_program
def _path_program(params, rate, guess, ts, rtol: float, atol: float, max_steps: int):
    """The whole path as one program without runtime checks: the start's equilibrium, then one
    adaptive solve per save interval (each starts where the last one ended). Returns
    `(lengths, equilibria, status, t_stop)` at the save times: `status` 0 (done), 1 (no
    equilibrium at the start), 2 (the branch was lost), 3 (the step limit); `t_stop`, the time
    the solve stopped at."""
    lengths, fractions, omegas, Pz, mu = params
    dtype = lengths.dtype
    newton_rtol, newton_atol = _tolerances(dtype)
    start = solve_equilibrium(params, guess, newton_rtol, newton_atol, _NEWTON_STEPS)
    start_bad = _off_branch(start, dtype)
    term = diffrax.ODETerm(_PathField(fractions, omegas, Pz, mu, rate))
    # A step below 100 ulps of the time cannot advance it: the solver stops there (a NaN
    # derivative, i.e. a lost branch, drives it down at once).
    dtmin = 100 * jnp.finfo(dtype).eps * jnp.maximum(jnp.max(jnp.abs(ts)), ts[-1] - ts[0])
    controller = diffrax.PIDController(rtol=rtol, atol=atol, dtmin=dtmin, force_dtmin=False)

    def interval(carry, times):
        y, status, t_stop = carry

        def solve(y):
            solution = diffrax.diffeqsolve(
                term,
                diffrax.Tsit5(),
                t0=times[0],
                t1=times[1],
                dt0=None,
                y0=y,
                saveat=diffrax.SaveAt(t1=True),
                stepsize_controller=controller,
                max_steps=max_steps,
                throw=False,
            )
            result = solution.result
            failed = jnp.where(result == diffrax.RESULTS.dt_min_reached, 2, 3)
            code = jnp.where(result == diffrax.RESULTS.successful, 0, failed)
            return solution.ys[0], code.astype(jnp.int32), solution.ts[0]

        y, status, t_stop = jax.lax.cond(status == 0, solve, lambda y: (y, status, t_stop), y)
        return (y, status, t_stop), y

    y0 = jnp.concatenate([lengths, jnp.stack([start.Omega, start.Q])])
    status = jnp.where(start_bad, 1, 0).astype(jnp.int32)
    (_, status, t_stop), ys = jax.lax.scan(
        interval, (y0, status, ts[0]), jnp.stack([ts[:-1], ts[1:]], axis=-1)
    )
    ys = jnp.concatenate([y0[None], ys])
    G = fractions.shape[0]
    eqs = jax.vmap(
        lambda p, g: solve_equilibrium(
            (p, fractions, omegas, Pz, mu), g, newton_rtol, newton_atol, _NEWTON_STEPS
        )
    )(ys[:, :G], ys[:, G:])
    return ys[:, :G], eqs, status, t_stop


def _verdict(x, status, t_stop, dtype, max_steps: int):
    """`x`, or the path's failure as an `EquinoxRuntimeError`: raised now when `status` is
    concrete, else attached to `x` as a runtime check."""
    hint = "" if _double(dtype) else _FLOAT64_HINT
    value, t = concrete(status), concrete(t_stop)
    where = "" if t is None else f" at t = {float(t):.6g}"
    messages = [
        "",
        _NO_START + hint,
        _LOST.format(where=where) + hint,
        _STEPS.format(max_steps=max_steps, where=where),
    ]
    if value is None:
        return eqx.branched_error_if(x, status > 0, status, messages)
    if int(value) > 0:
        raise eqx.EquinoxRuntimeError(messages[int(value)])
    return x


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
    dtype = lengths.dtype
    rate = _path_rate(rate, gamma, mu, angles, dtype)
    default_rtol, default_atol = _ode_tolerances(dtype)
    rtol, atol = rtol or default_rtol, atol or default_atol
    ts = _check_times(ts, dtype)
    if guess is None:
        found = equilibrium_branches(*params[:4], mu=mu)
        guess = (found.Omega[0], found.Q[0])
    value = concrete(guess)
    guess = jnp.asarray(guess, dtype) if value is None else jnp.asarray(value.astype(dtype))
    path_lengths, eqs, status, t_stop = _path_program(
        params, rate, guess.reshape(2), ts, rtol, atol, _MAX_STEPS
    )
    path_lengths = _verdict(path_lengths, status, t_stop, dtype, _MAX_STEPS)
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
