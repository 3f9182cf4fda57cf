"""Mixing equilibria: collective precession states at fixed lengths |P_g| (physics.md section 7).

Groups `g` (fractions `f_g`, vacuum frequencies `omega_g`, mass basis, `B = (0, 0, -1)`) precess
rigidly about `z` at a common `Omega`. In the co-rotating frame each group is static and
(anti)parallel to `H'_g = a_g z + mu Pbar_perp`, `a_g = mu Pbar_z - omega_g - Omega`. With
`Q = |Pbar_perp|`, `h_g = sqrt(a_g^2 + mu^2 Q^2)` and signed lengths `p_g`:

    (SC1)  1      = mu sum_g f_g p_g / h_g
    (SC2)  Pbar_z = sum_g f_g p_g a_g / h_g

Given `{p_g}` and the conserved `Pbar_z`, these fix `(Omega, Q)`. Solved by Newton's method with
a backtracking line search on `|residual|^2` (the Jacobian by autodiff), which keeps a branch
where the undamped method jumps off it (a continuous spectrum at small `mu`, where `Q` is small
and the conditions are steep near the groups with `a_g ~ 0`), then polished by optimistix's Newton
method, whose implicit adjoint differentiates the solution (implicit function theorem).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float

from .._sampling.angles import angle_model
from .._sampling.options import check_count
from .._support.checks import (
    _show,
    as_dtype,
    bloch_tolerance,
    check_finite,
    check_if_concrete,
    check_nonnegative,
    check_positive,
    check_scalar,
    concrete,
    refuse,
)
from .._support.programs import stored_program


class Equilibrium(eqx.Module):
    """A collective precession state.

    - `Omega`: precession frequency (about `+z`, right-handed); `Q`: `|Pbar_perp|` (>= 0).
    - `P`: group Bloch vectors in the co-rotating frame with `Pbar_perp` along `+x`, `(G, 3)`.
    - `residual`: `(SC1, SC2)` residuals at the solution; `converged`: Newton's verdict.
    - `branch`: signs of `a_g` (+1: group along `+z`-ish side of `H'_g`), labelling the branch.
    """

    Omega: Array
    Q: Array
    P: Array
    residual: Array
    converged: Array
    branch: Array


def _double(dtype) -> bool:
    return jnp.finfo(dtype).bits == 64


def _tolerances(dtype) -> tuple[float, float]:
    """Newton's default (rtol, atol) on `(Omega, Q)` and on the residual: 1e-10, 1e-12 in
    float64; 1e-5, 1e-5 in float32, where SC1-SC2 are sums of terms of order `mu f p / h`
    (often 1-10), so the residual cannot go below a few ulps of those, 1e-7 to 1e-6."""
    return (1e-10, 1e-12) if _double(dtype) else (1e-5, 1e-5)


def _residual_limit(dtype) -> float:
    """Largest SC1-SC2 residual accepted as an equilibrium (branches, the path)."""
    return 1e-8 if _double(dtype) else 1e-4


def _distinct(dtype) -> float:
    """Two solutions closer than this in `(Omega, Q)`, relative to the problem's frequency
    scale, are the same branch (Newton stops within rtol of the root)."""
    return 1e-6 if _double(dtype) else 1e-3


def _ode_tolerances(dtype) -> tuple[float, float]:
    """The path's default ODE (rtol, atol): 1e-8, 1e-10 in float64, 1e-5, 1e-7 in float32."""
    return (1e-8, 1e-10) if _double(dtype) else (1e-5, 1e-7)


_FLOAT64_HINT = (
    " (in float32 the equilibrium conditions resolve |residual| to about 1e-6 only; if the "
    "branch is ill-conditioned, use float64: jax.config.update('jax_enable_x64', True))"
)


def _residual(y, args):
    Omega, q = y[0], y[1]
    lengths, fractions, omegas, Pz, mu = args
    a = mu * Pz - omegas - Omega
    h = jnp.sqrt(a**2 + (mu * q) ** 2)
    return jnp.stack(
        [mu * jnp.sum(fractions * lengths / h) - 1, jnp.sum(fractions * lengths * a / h) - Pz]
    )


def _state(Omega, Q, lengths, omegas, Pz, mu):
    a = mu * Pz - omegas - Omega
    h = jnp.sqrt(a**2 + (mu * Q) ** 2)
    return lengths[:, None] * jnp.stack([mu * Q / h, jnp.zeros_like(a), a / h], axis=-1)


def _params(lengths, fractions, omegas, Pz, mu):
    dtype = jnp.dtype(jnp.result_type(float))
    lengths, fractions, omegas = (
        as_dtype(jnp.asarray(x), dtype) for x in (lengths, fractions, omegas)
    )
    if lengths.ndim != 1 or lengths.shape != fractions.shape or lengths.shape != omegas.shape:
        raise ValueError(
            "lengths, fractions and omegas must be 1-D of one length (one entry per group), got "
            f"{lengths.shape}, {fractions.shape}, {omegas.shape}"
        )
    Pz, mu = check_scalar(Pz, "Pz", dtype), check_scalar(mu, "mu", dtype)
    # Keep the returned arrays: for traced values the check is attached to them.
    lengths, fractions, omegas = (
        check_finite(x, name)
        for x, name in ((lengths, "lengths"), (fractions, "fractions"), (omegas, "omegas"))
    )
    slack = bloch_tolerance(dtype)
    lengths = refuse(
        lengths,
        lambda xp, x: xp.abs(x) > 1 + slack,
        f"lengths are signed |P_g| and must lie in [-1, 1], got {_show(lengths)}",
    )
    fractions = check_nonnegative(fractions, "fractions")
    fractions = refuse(
        fractions,
        lambda xp, x: xp.abs(xp.sum(x) - 1) > 1e3 * float(jnp.finfo(dtype).eps),
        f"fractions are the groups' shares of the gas and must sum to 1, got {_show(fractions)}",
    )
    Pz = refuse(
        check_finite(Pz, "Pz"),
        lambda xp, x: xp.abs(x) > 1 + slack,
        f"Pz must lie in [-1, 1], got {_show(Pz)}",
    )
    return lengths, fractions, omegas, Pz, check_positive(mu, "mu")


# Save times of a path: each interval is one integration and its equilibria come back to the
# host; a million saves take about a minute and 100 MB for two groups.
MAX_SAVES = 1_000_000


def _check_times(ts, dtype):
    """Save times: at least two, at most `MAX_SAVES`, finite and strictly increasing."""
    count = np.shape(ts)[0] if np.ndim(ts) else 0
    if count > MAX_SAVES:
        raise ValueError(
            f"ts has {count} save times: at most {MAX_SAVES} (each save interval is one "
            "integration of the path); save less often"
        )
    ts = as_dtype(jnp.asarray(ts), jnp.dtype(dtype))
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(
            f"ts must be a 1-D array of at least 2 save times (the start first), got shape "
            f"{ts.shape}"
        )
    ts = check_finite(ts, "ts")
    return refuse(
        ts, lambda xp, x: xp.diff(x) <= 0, f"ts must be strictly increasing, got {_show(ts)}"
    )


def precession_equilibrium(
    lengths: Float[ArrayLike, " G"],
    fractions: Float[ArrayLike, " G"],
    omegas: Float[ArrayLike, " G"],
    Pz: Float[ArrayLike, ""],
    *,
    mu: Float[ArrayLike, ""] = 1.0,
    guess: tuple[float, float] | Float[ArrayLike, "2"] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 256,
) -> Equilibrium:
    """Solve SC1-SC2 for `(Omega, Q)` given signed lengths `p_g`, fractions `f_g`, vacuum
    frequencies `omega_g` and the conserved `Pbar_z` (physics.md section 7).

    `guess=(Omega, Q)` selects the branch (continuation: pass the previous solution); without it
    the best start of `equilibrium_branches` is used. Any number of groups (a continuous spectrum
    is many narrow groups). vmappable; differentiable in every input through the implicit function
    theorem (optimistix's `ImplicitAdjoint`).

    A solve that does not converge raises (a `ValueError` for concrete input; under `jit` or
    `vmap` an `EquinoxRuntimeError` when the program runs): never a NaN without a word.
    """
    params = _params(lengths, fractions, omegas, Pz, mu)
    if guess is None:
        found = equilibrium_branches(*params[:4], mu=params[4])
        guess = (found.Omega[0], found.Q[0])
    dtype = params[0].dtype
    value = concrete(guess)
    y0 = jnp.asarray(guess, dtype) if value is None else jnp.asarray(value.astype(dtype))
    if y0.size != 2:
        raise ValueError(f"guess must be (Omega, Q), two numbers, got shape {y0.shape}")
    y0 = check_finite(y0.reshape(2), "guess")
    default_rtol, default_atol = _tolerances(dtype)
    eq = find_equilibrium(params, y0, rtol or default_rtol, atol or default_atol, max_steps)
    message = (
        "precession_equilibrium did not converge from guess=(Omega, Q) = {}: start nearer "
        "the branch (in a continuation, smaller steps in mu or the lengths), raise max_steps, "
        "or omit guess to search every branch (equilibrium_branches)"
    )
    converged = concrete(eq.converged)
    if converged is None:
        return eqx.error_if(eq, ~eq.converged, message.format("(traced)"))
    if not bool(converged):
        shown = tuple(float(x) for x in np.asarray(value)) if value is not None else "(traced)"
        raise ValueError(
            message.format(shown)
            + f" (residual {np.max(np.abs(np.asarray(eq.residual))):.2g})"
            + ("" if _double(dtype) else _FLOAT64_HINT)
        )
    return eq


@stored_program
def solve_equilibrium(params, y0, rtol: float, atol: float, max_steps: int) -> Equilibrium:
    """SC1-SC2 by optimistix's Newton method from checked `params = (lengths, fractions, omegas,
    Pz, mu)` and a start `y0 = (Omega, Q)` near the root (the path's steps, a polish): one
    program, with no runtime check of its own (so that it can sit inside other programs, and in
    the compilation cache). `converged`: Newton succeeded and the solution is finite."""
    solution = optx.root_find(
        _residual,
        optx.Newton(rtol=rtol, atol=atol),
        y0,
        args=params,
        max_steps=max_steps,
        throw=False,
    )
    Omega, q = solution.value[0], solution.value[1]
    Q = jnp.abs(q)
    lengths, fractions, omegas, Pz, mu = params
    residual = _residual(solution.value, params)
    finite = jnp.all(jnp.isfinite(solution.value)) & jnp.all(jnp.isfinite(residual))
    return Equilibrium(
        Omega=Omega,
        Q=Q,
        P=_state(Omega, Q, lengths, omegas, Pz, mu),
        residual=residual,
        converged=(solution.result == optx.RESULTS.successful) & finite,
        branch=jnp.sign(mu * Pz - omegas - Omega).astype(jnp.int32),
    )


@stored_program
def find_equilibrium(params, y0, rtol: float, atol: float, max_steps: int) -> Equilibrium:
    """`solve_equilibrium` from a start that may be far from the root: Newton with a line search
    (`_damped_newton`) first, then the undamped method from where it ends (whose implicit
    adjoint differentiates the solution)."""
    near, reached = _damped_newton(params, y0, rtol, atol, max_steps)
    eq = solve_equilibrium(params, jax.lax.stop_gradient(near), rtol, atol, max_steps)
    return eqx.tree_at(lambda e: e.converged, eq, eq.converged & reached)


def _damped_newton(params, y0, rtol, atol, max_steps):
    """Newton's method on SC1-SC2 with a backtracking line search (Armijo on `|residual|^2`,
    halving from the full step): `(y, reached)`, `reached` when the residual is below `atol`
    (times the problem's scale) and the last step below `rtol |y| + atol`. Where the Newton
    direction is not finite (a singular Jacobian) the steepest descent direction is taken."""
    residual = lambda y: _residual(y, params)

    def merit(y):
        r = residual(y)
        return jnp.where(jnp.all(jnp.isfinite(r)), jnp.sum(r * r), jnp.inf)

    def done(y, step):
        small = jnp.max(jnp.abs(residual(y))) <= 10 * atol
        return small & (step <= rtol * jnp.max(jnp.abs(y)) + atol)

    def iterate(carry):
        y, k, _ = carry
        r, J = residual(y), jax.jacfwd(residual)(y)
        d = -jnp.linalg.solve(J, r)
        d = jnp.where(jnp.all(jnp.isfinite(d)), d, -J.T @ r)
        m0 = jnp.sum(r * r)

        def halve(state):
            a, _ = state
            return a / 2, merit(y + (a / 2) * d)

        def longer(state):
            a, m = state
            return (m > (1 - 1e-4 * a) * m0) & (a > 1e-12)

        a, _ = jax.lax.while_loop(longer, halve, (jnp.asarray(2.0, y.dtype), jnp.inf))
        return y + a * d, k + 1, jnp.max(jnp.abs(a * d))

    def going(carry):
        y, k, step = carry
        return (k < max_steps) & ~done(y, step) & jnp.all(jnp.isfinite(y))

    start = (y0, jnp.asarray(0), jnp.asarray(jnp.inf, y0.dtype))
    y, _, step = jax.lax.while_loop(going, iterate, start)
    return y, done(y, step)


def equilibrium_branches(
    lengths,
    fractions,
    omegas,
    Pz,
    *,
    mu=1.0,
    n_starts: int = 64,
    steps: int = 400,
    tol: float | None = None,
) -> Equilibrium:
    """Enumerate the branches: an optax (Adam) descent of `|residual|^2` from `n_starts` starting
    points spread over `(Omega, Q)`, each polished by Newton; converged, distinct solutions with
    `Q > 0` are returned sorted by residual (a batched `Equilibrium`, leading axis = branch).
    `tol`: the largest accepted residual (default 1e-8 in float64, 1e-4 in float32). Runs
    eagerly (the number of branches is data-dependent)."""
    params = _params(lengths, fractions, omegas, Pz, mu)
    values = [concrete(x) for x in params]
    if any(v is None for v in values):
        raise ValueError(
            "equilibrium_branches runs eagerly (the number of branches depends on the values); "
            "call it outside jit/vmap, or use precession_equilibrium with a guess there"
        )
    lengths_, fractions_, omegas_, Pz_, mu_ = values
    dtype = params[0].dtype
    tol = _residual_limit(dtype) if tol is None else tol
    scale = float(np.max(np.abs(omegas_)) + np.abs(mu_) * (np.abs(Pz_) + 1))
    grid_O = np.linspace(-2 * scale, 2 * scale, int(np.sqrt(n_starts)) + 1)
    # Q from 1e-4 to 1 geometrically: continuous spectra at small mu have branches at Q ~ 1e-3.
    grid_Q = np.geomspace(1e-4, 1.0, int(np.sqrt(n_starts)) + 1)
    starts = np.stack(np.meshgrid(grid_O, grid_Q), axis=-1).reshape(-1, 2).astype(dtype)
    polished = _candidates(params, jnp.asarray(starts), jnp.asarray(scale, dtype), steps)
    polished = jax.tree_util.tree_map(np.asarray, polished)
    res = np.max(np.abs(polished.residual), axis=-1)
    # Near Q = 0 the conditions depend on Q through (mu Q / a_g)^2 only, so a root with Q below
    # sqrt(eps) of the frequency scale is the Q = 0 state to working precision, not a branch.
    Q_min = float(np.sqrt(jnp.finfo(dtype).eps)) * scale
    ok = polished.converged & (res < tol) & (polished.Q > Q_min)
    order = [int(k) for k in np.argsort(res) if ok[k]]
    keep: list[int] = []
    for k in order:
        point = np.asarray([polished.Omega[k], polished.Q[k]])
        if all(
            np.max(np.abs(point - np.asarray([polished.Omega[m], polished.Q[m]])))
            > _distinct(dtype) * scale
            for m in keep
        ):
            keep.append(k)
    if not keep:
        raise ValueError(
            "no precession equilibrium with Q > 0 was found for these lengths and Pbar_z"
            + ("" if _double(dtype) else _FLOAT64_HINT)
        )
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x[np.asarray(keep)]), polished)


@stored_program
def _candidates(params, starts, scale, steps: int) -> Equilibrium:
    """Every start's Adam descent of `|residual|^2`, polished by Newton: one program."""
    # optax's Adam mixes its int32 step count with floats; allow that even where a caller runs
    # with strict dtype promotion.
    with jax.numpy_dtype_promotion("standard"):
        optimizer = optax.adam(1e-2 * scale)

        def descend(y):
            loss = lambda y: jnp.sum(_residual(y, params) ** 2)

            def step(carry, _):
                y, state = carry
                grads = jax.grad(loss)(y)
                updates, state = optimizer.update(grads, state)
                return (optax.apply_updates(y, updates), state), None

            (y, _), _ = jax.lax.scan(step, (y, optimizer.init(y)), None, length=steps)
            return y

        rough = jax.vmap(descend)(starts)
    rtol, atol = _tolerances(starts.dtype)
    return jax.vmap(lambda y: find_equilibrium(params, y, rtol, atol, 256))(rough)


def endpoint_frequency(fractions, omegas, Pz, *, guess: float, mu=1.0) -> Array:
    r"""The final precession frequency at the end of the miscidynamic path ($`Q \to 0`$,
    $`\mathbf{P}_g \to \bar P_z \hat{\mathbf{z}}`$): the root $`\Omega`$ of

    $$`\mu \bar P_z \sum_g \frac{f_g}{\mu \bar P_z - \omega_g - \Omega} = 1`$$

    reached by Newton from `guess`, the current precession frequency of the path: the equation
    has several roots (one between each pair of poles), and the physical one continues the state
    the gas is in (physics.md section 8)."""
    check_if_concrete(guess, "guess")
    fractions, omegas = (
        jnp.asarray(fractions, jnp.result_type(float)),
        jnp.asarray(omegas, jnp.result_type(float)),
    )
    Pz, mu = jnp.asarray(Pz, fractions.dtype), jnp.asarray(mu, fractions.dtype)
    fn = lambda Omega, args: mu * Pz * jnp.sum(fractions / (mu * Pz - omegas - Omega)) - 1
    # One equation in one unknown: float64 resolves it far below Newton's SC1-SC2 default.
    rtol, atol = (1e-12, 1e-14) if _double(fractions.dtype) else _tolerances(fractions.dtype)
    solution = optx.root_find(
        fn, optx.Newton(rtol=rtol, atol=atol), jnp.asarray(guess, fractions.dtype), throw=False
    )
    return solution.value


# ------------------------------------------------------------------------------------------------
# The miscidynamic path (physics.md section 8): a gas drifting along the precession equilibria
# of `_equilibrium` as its lengths |P_g| relax, its kicked discretization, and the path's start
# read from a simulated gas.

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
    r"""The poster's discrete recipe: from an equilibrium, change the lengths by one relaxation
    step of duration `kick_time`
    ($`p \to p - \Gamma\, t_\mathrm{kick} (p - \hat{\mathbf{H}}' \cdot
    \bar{\mathbf{P}})`$), find the new
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
    r"""Read the miscidynamic variables off a simulated gas (mass basis): `Pbar_z` (the conserved
    lepton number per neutrino), $`Q = |\bar{\mathbf{P}}_\perp|`$, $`\Omega`$ from the unwrapped
    phase of $`\bar{\mathbf{P}}_\perp`$ (least-squares slope over `index +- window` saves), and
    signed lengths
    $`p_g = |\langle\mathbf{P}_g\rangle|\,
    \mathrm{sign}(\langle\mathbf{P}_g\rangle \cdot \mathbf{H}'_g)`$.
    `group_mean` `(S, G, 3)`, `ts` `(S,)`.
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
