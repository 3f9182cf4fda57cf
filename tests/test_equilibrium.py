import itertools
import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj

from .conftest import assert_allclose

F = jnp.asarray([0.6, 0.4])
W = jnp.asarray([0.1, 0.2])
PZ = 0.2


def rotation_z(angle):
    c, s = jnp.cos(angle), jnp.sin(angle)
    zero, one = jnp.zeros_like(angle), jnp.ones_like(angle)
    return jnp.stack(
        [
            jnp.stack([c, -s, zero], -1),
            jnp.stack([s, c, zero], -1),
            jnp.stack([zero, zero, one], -1),
        ],
        -2,
    )


@pytest.mark.parametrize("lengths", [(0.5, 0.3), (0.9, 0.7), (0.25, -0.2)])
def test_equilibrium_precesses_rigidly_under_the_mean_field(lengths):
    """The state returned solves SC1-SC2 and, evolved by the mean-field ODE (GroupField),
    rotates rigidly about z at Omega with its lengths and Pbar_z unchanged: it is a collective
    precession."""
    branches = oj.equilibrium_branches(jnp.asarray(lengths), F, W, PZ)
    # Distinct branches, sorted by residual.
    points = np.stack([branches.Omega, branches.Q], axis=-1)
    gaps = np.abs(points[:, None] - points[None]).max(-1) + np.eye(len(points))
    assert np.all(gaps > 1e-6), points
    residuals = np.max(np.abs(np.asarray(branches.residual)), axis=-1)
    assert np.all(np.diff(residuals) >= 0)
    for k in range(len(branches.Omega)):
        eq = oj.precession_equilibrium(
            jnp.asarray(lengths), F, W, PZ, guess=(branches.Omega[k], branches.Q[k])
        )
        assert bool(eq.converged) and float(jnp.max(jnp.abs(eq.residual))) < 1e-12
        assert_allclose(jnp.linalg.norm(eq.P, axis=-1), np.abs(lengths), rtol=0, atol=1e-12)
        assert_allclose(F @ eq.P[:, 2], PZ, rtol=0, atol=1e-12)
        assert_allclose(jnp.linalg.norm((F @ eq.P)[:2]), eq.Q, rtol=0, atol=1e-12)
        field = oj.GroupField(
            F,
            W,
            oj.System(gamma=jnp.asarray(0.0), mu=jnp.asarray(1.0), B=jnp.asarray([0.0, 0, -1])),
        )
        ts = jnp.linspace(0.0, 20.0, 9)
        sol = oj.solve_meanfield(field, eq.P, ts, rtol=1e-11, atol=1e-13)
        assert_allclose(
            sol.P, jnp.einsum("tij,gj->tgi", rotation_z(eq.Omega * ts), eq.P), rtol=0, atol=1e-9
        )


def test_many_groups_and_vmap():
    """A continuous spectrum as 40 omega bins; vmapped over the lengths."""
    omegas = jnp.linspace(-0.5, 0.5, 40)
    fractions = jnp.full(40, 1 / 40)
    lengths = jnp.where(omegas < 0.1, 0.8, -0.6)
    Pz = float(fractions @ lengths) * 0.5
    found = oj.equilibrium_branches(lengths, fractions, omegas, Pz)
    guess = (found.Omega[0], found.Q[0])
    scaled = jnp.stack([lengths, 0.999 * lengths, 0.998 * lengths])
    eqs = jax.vmap(lambda l: oj.precession_equilibrium(l, fractions, omegas, Pz, guess=guess))(
        scaled
    )
    assert np.all(np.asarray(eqs.converged))
    assert float(jnp.max(jnp.abs(eqs.residual))) < 1e-11
    assert np.all(np.diff(np.asarray(eqs.Q)) != 0)  # the family moves with the lengths


def test_implicit_gradients_against_finite_differences():
    lengths = jnp.asarray([0.5, 0.3])
    found = oj.equilibrium_branches(lengths, F, W, PZ)
    guess = (found.Omega[0], found.Q[0])

    def outputs(lengths, omegas, Pz, mu):
        eq = oj.precession_equilibrium(lengths, F, omegas, Pz, mu=mu, guess=guess)
        return jnp.stack([eq.Omega, eq.Q])

    args = (lengths, W, jnp.asarray(PZ), jnp.asarray(1.0))
    jac = jax.jacobian(outputs, argnums=(0, 1, 2, 3))(*args)
    h = 1e-6
    for k, arg in enumerate(args):
        flat = jnp.ravel(arg)
        for m in range(flat.size):
            e = jnp.zeros_like(flat).at[m].set(h).reshape(jnp.shape(arg))
            plus = list(args)
            minus = list(args)
            plus[k] = arg + e
            minus[k] = arg - e
            fd = (outputs(*plus) - outputs(*minus)) / (2 * h)
            analytic = jac[k][:, m] if jnp.ndim(arg) else jac[k]
            assert_allclose(analytic, fd, rtol=1e-6, atol=1e-9, err_msg=f"argument {k}, entry {m}")


def test_endpoint_frequency():
    """Q -> 0 with P_g -> Pbar_z z: Omega solves
    mu Pbar_z sum f_g/(mu Pbar_z - omega_g - Omega) = 1; for these two groups the quadratic
    Omega^2 + 0.1 Omega - 0.008 = 0."""
    roots = np.roots([1.0, 0.1, -0.008])
    for guess in (-0.13, 0.04):
        Omega = float(oj.endpoint_frequency(F, W, PZ, guess=guess))
        assert min(abs(Omega - r) for r in roots) < 1e-12
    assert float(oj.endpoint_frequency(F, W, PZ, guess=-0.13)) == pytest.approx(
        min(roots), abs=1e-12
    )


def test_bad_input():
    with pytest.raises(ValueError, match="one entry per group"):
        oj.precession_equilibrium(
            jnp.asarray([0.5, 0.3]), jnp.asarray([1.0]), W, PZ, guess=(0.0, 0.3)
        )


def test_miscidynamic_path_stays_on_equilibria_and_the_kicks_converge_to_it():
    """Along the path every state solves SC1-SC2 with the path's lengths, Q falls, Pbar_z is
    kept, and the poster's discrete kick recipe converges to the ODE path at first order."""
    lengths = jnp.asarray([0.5, 0.3])
    ts = jnp.linspace(0.0, 600.0, 4)
    path = oj.miscidynamic_path(lengths, F, W, PZ, ts, gamma=0.01)
    for k in range(len(ts)):
        eq = oj.precession_equilibrium(path.lengths[k], F, W, PZ, guess=(path.Omega[k], path.Q[k]))
        assert_allclose(
            jnp.stack([eq.Omega, eq.Q]), jnp.stack([path.Omega[k], path.Q[k]]), rtol=0, atol=1e-10
        )
        assert_allclose(F @ path.P[k, :, 2], PZ, rtol=0, atol=1e-10)
    assert np.all(np.diff(np.asarray(path.Q)) < 0)
    # Each length relaxes toward Hhat'.Pbar: the two groups' lengths approach each other.
    gap = np.abs(np.asarray(path.lengths[:, 0] - path.lengths[:, 1]))
    assert gap[-1] < 0.05 * gap[0]
    errors, kicks = [], np.asarray([20.0, 10.0, 5.0])
    for kick in kicks:
        discrete = oj.kicked_path(
            lengths, F, W, PZ, gamma=0.01, kick_time=float(kick), n_kicks=int(600 / kick)
        )
        errors.append(float(jnp.max(jnp.abs(discrete.lengths[-1] - path.lengths[-1]))))
    order = np.polyfit(np.log(kicks), np.log(errors), 1)[0]
    assert 0.8 < order < 1.2, (order, errors)


def test_foreground_miscidynamics_is_exact_for_the_master_equation():
    """physics.md section 8's simplest example: the equilibria of a foreground neutrino are
    P = p Hhat, H = omega B + mu_R P_b, and along Hhat the master equation gives exactly
    dp/dt = -Gamma (p - Hhat . P_b); so Hhat . foreground_mean(t) = c + (p0 - c) exp(-Gamma t)."""
    P_b = jnp.asarray([0.5, 0.2, 0.6])
    P0 = jnp.asarray([0.1, -0.7, 0.3])
    omega, gamma = 0.8, 0.05
    B = oj.mixing_vector(0.3)
    mu_R, Gamma = oj.master_rates(gamma)
    H = omega * B + mu_R * P_b
    Hhat = H / jnp.linalg.norm(H)
    ts = jnp.linspace(0.0, 60.0, 7)
    P = oj.foreground_mean(P0, P_b, ts, gamma=gamma, omega=omega, B=B)
    c = Hhat @ P_b
    assert_allclose(P @ Hhat, c + (P0 @ Hhat - c) * jnp.exp(-Gamma * ts), rtol=0, atol=1e-12)
    # The transverse part dies out: the state ends on its equilibrium p Hhat.
    assert float(jnp.linalg.norm(P[-1] - (P[-1] @ Hhat) * Hhat)) < 0.1 * float(
        jnp.linalg.norm(P0 - (P0 @ Hhat) * Hhat)
    )


def test_lost_branches_raise_clear_errors(monkeypatch):
    """No equilibrium can carry Pbar_z = 0.2 with lengths 0.05: the start is refused. A path
    whose lengths are driven out of the region where equilibria exist (here: relaxed to 0, by
    a replaced target, so that sum_g f_g |p_g| < |Pbar_z| from t = ln(0.5 / 0.2) / Gamma on)
    stops there with the branch message, naming that time."""
    import equinox as eqx

    import oile_jax._equilibria.equilibrium as path_module

    with pytest.raises(
        eqx.EquinoxRuntimeError, match="no precession equilibrium at the starting lengths"
    ):
        oj.miscidynamic_path(
            jnp.asarray([0.05, 0.05]),
            F,
            W,
            PZ,
            jnp.asarray([0.0, 1.0]),
            gamma=0.01,
            guess=(-0.13, 0.3),
        )
    monkeypatch.setattr(path_module, "_target", lambda eq, omegas, Pz, mu: 0 * omegas)
    with pytest.raises(eqx.EquinoxRuntimeError, match="lost its equilibrium branch at t = ") as e:
        oj.miscidynamic_path(
            jnp.asarray([0.5, 0.5]), F, W, PZ, jnp.asarray([0.0, 20.0]), gamma=1.0, rate=0.1
        )
    t_lost = float(str(e.value).split("at t = ")[1].split(":")[0])
    assert abs(t_lost - np.log(0.5 / 0.2) / 0.1) < 0.05, t_lost


def test_path_reaches_the_end_of_its_branch():
    """Run far past flavour equilibration: the path follows its branch to the end, Q -> 0 with
    every length at Pbar_z (P_g -> Pbar_z z), precessing at the endpoint frequency (the root of
    mu Pbar_z sum_g f_g / (mu Pbar_z - omega_g - Omega) = 1 continuing the path)."""
    path = oj.miscidynamic_path(
        jnp.asarray([0.5, 0.3]), F, W, PZ, jnp.asarray([0.0, 1e4]), gamma=0.1
    )
    assert float(path.Q[-1]) < 1e-6
    assert_allclose(path.lengths[-1], [PZ, PZ], rtol=0, atol=1e-6)
    end = oj.endpoint_frequency(F, W, PZ, guess=float(path.Omega[0]))
    assert_allclose(path.Omega[-1], end, rtol=0, atol=1e-7)


# Two groups in the mass basis, 72 inputs: lengths, fractions, Pbar_z and mu varied.
GRID = list(
    itertools.product([1.0, 0.7], [-1.0, -0.5, 0.8], [0.4, 0.6], [-0.1, 0.2, 0.35], [1.0, 0.5])
)
GRID_SCRIPT = textwrap.dedent(
    """
    import itertools, json, sys
    import jax
    if sys.argv[1] == "64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import oile_jax as oj
    out = []
    for p1, p2, f1, Pz, mu in json.loads(sys.argv[2]):
        try:
            br = oj.equilibrium_branches([p1, p2], [f1, 1 - f1], [0.1, 0.2], Pz, mu=mu)
            out.append([float(br.Omega[0]), float(br.Q[0])])
        except ValueError as error:
            assert "no precession equilibrium" in str(error), error
            out.append(None)
    # The case of the report: lengths (1, -1), fractions (0.6, 0.4), omegas (0.1, 0.2), Pz 0.2.
    path = oj.miscidynamic_path([1.0, -1.0], [0.6, 0.4], [0.1, 0.2], 0.2,
                                jnp.linspace(0.0, 100.0, 3), gamma=0.01)
    print("RESULT" + json.dumps({"grid": out, "dtype": str(path.Omega.dtype),
                                 "path": [float(path.Omega[-1]), float(path.Q[-1])]}))
    """
)


@pytest.mark.long  # 48 s on 2 cores: make test-long, in CI
def test_float32_finds_the_float64_equilibria():
    """The branch search and the miscidynamic path work in JAX's default float32 (a fresh
    process without x64) wherever float64 finds an equilibrium, on a grid of 72 inputs: the
    same inputs succeed (56 of 72 on 2026-12-02; the other 16 have no branch with Q resolved
    from 0 in either precision), with the same best branch to Newton's float32 tolerance."""
    runs = {
        bits: subprocess.Popen(
            [sys.executable, "-c", GRID_SCRIPT, bits, json.dumps(GRID)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for bits in ("32", "64")
    }
    results = {}
    for bits, proc in runs.items():
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        line = next(x for x in stdout.splitlines() if x.startswith("RESULT"))
        results[bits] = json.loads(line[len("RESULT") :])
    assert results["32"]["dtype"] == "float32" and results["64"]["dtype"] == "float64"
    single, double = results["32"]["grid"], results["64"]["grid"]
    found = [k for k, x in enumerate(double) if x is not None]
    assert len(found) >= 50, len(found)
    assert [x is not None for x in single] == [x is not None for x in double]
    for k in found:
        assert_allclose(single[k], double[k], rtol=0, atol=1e-4, err_msg=str(GRID[k]))
    # The float64 path: Omega 0.0742 at the start, drifting down as the lengths shrink.
    assert_allclose(results["32"]["path"], results["64"]["path"], rtol=0, atol=1e-5)


def test_path_relaxes_at_four_thirds_mu_gamma():
    """The default rate of the path and of the kicks is Gamma = (4/3) mu gamma (isotropic
    angles, physics.md section 8), checked against the lengths' first step computed in NumPy
    from the equilibrium's (Omega, Q): dp_g/dt = -Gamma (p_g - (mu Q^2 + a_g Pz) / h_g)."""
    lengths, gamma, mu, dt = np.array([0.9, -0.7]), 0.01, 1.3, 0.05
    eq = oj.precession_equilibrium(jnp.asarray(lengths), F, W, PZ, mu=mu)
    a = mu * PZ - np.asarray(W) - float(eq.Omega)
    h = np.sqrt(a**2 + (mu * float(eq.Q)) ** 2)
    slope = -(4 / 3) * mu * gamma * (lengths - (mu * float(eq.Q) ** 2 + a * PZ) / h)
    assert np.all(np.abs(slope) > 1e-4)  # the lengths do move
    guess = (float(eq.Omega), float(eq.Q))
    path = oj.miscidynamic_path(
        jnp.asarray(lengths), F, W, PZ, jnp.asarray([0.0, dt]), gamma=gamma, mu=mu, guess=guess
    )
    # Over dt the slope changes by O(Gamma dt) relative: 1e-3 here.
    assert_allclose((path.lengths[1] - lengths) / dt, slope, rtol=3e-3, atol=0)
    kicks = oj.kicked_path(
        jnp.asarray(lengths), F, W, PZ, gamma=gamma, mu=mu, kick_time=dt, n_kicks=1, guess=guess
    )
    assert_allclose((kicks.lengths[1] - lengths) / dt, slope, rtol=1e-9, atol=0)
    # Another angle model relaxes at its own <x^2>: fixed angle pi (x = 2) at 4 mu gamma.
    kicks = oj.kicked_path(
        jnp.asarray(lengths),
        F,
        W,
        PZ,
        gamma=gamma,
        mu=mu,
        kick_time=dt,
        n_kicks=1,
        guess=guess,
        angles=oj.FixedAngle(jnp.asarray(np.pi)),
    )
    assert_allclose((kicks.lengths[1] - lengths) / dt, 3 * slope, rtol=1e-9, atol=0)


@pytest.mark.long  # 13 s: make test-long, in CI
def test_the_spectral_splits_adiabatic_path_to_its_end():
    """A box spectrum of 201 nu_e modes on [-1, 1] (theta = 0.1, mass basis, every length +1)
    followed by continuation from mu = 100 down to 0.1 (301 values, geometric): every point
    converges (undamped Newton lost the branch at mu <= 0.1202, returning NaN without a word),
    and at the end the modes swap on either side of the split frequency of the closed form
    `(a + b)/2 + cos 2theta (b - a)/2` (lepton number), to within one mode's width. The branch
    exists where it was lost: equilibrium_branches finds it there too (its start grid reaches
    Q = 1e-4)."""
    a, b, theta, G = -1.0, 1.0, 0.1, 201
    omegas = a + (b - a) * (np.arange(G) + 0.5) / G
    fractions, lengths, Pz = np.full(G, 1.0 / G), np.ones(G), np.cos(2 * theta)
    mus = np.geomspace(100.0, 0.1, 301)
    eq = oj.precession_equilibrium(lengths, fractions, omegas, Pz, mu=mus[0])
    for mu in mus[1:]:
        eq = oj.precession_equilibrium(
            lengths, fractions, omegas, Pz, mu=mu, guess=(eq.Omega, eq.Q)
        )
        assert bool(eq.converged) and np.all(np.isfinite(np.asarray(eq.P))), mu
        assert np.max(np.abs(np.asarray(eq.residual))) < 1e-10, mu
    split = 0.1 * Pz - float(eq.Omega)  # where a_g = mu Pz - omega_g - Omega changes sign
    expected = (a + b) / 2 + np.cos(2 * theta) * (b - a) / 2
    assert abs(split - expected) < (b - a) / G, (split, expected)
    below = omegas < split
    P_z = np.asarray(eq.P)[:, 2]
    assert np.all(P_z[below][:-2] > 0.99) and np.all(P_z[~below][2:] < -0.99)
    assert 0 < float(eq.Q) < 0.01
    found = oj.equilibrium_branches(lengths, fractions, omegas, Pz, mu=0.12)
    assert np.min(np.abs(np.asarray(found.Q) - 0.001)) < 0.01


def test_an_equilibrium_that_does_not_converge_raises():
    """Never a NaN without a word: too few steps from a far start raise, saying what to
    change; under jit the same is a runtime error."""
    args = ([0.5, 0.3], [0.6, 0.4], [0.1, 0.2], 0.2)
    with pytest.raises(ValueError, match=r"did not converge from guess=.*smaller steps"):
        oj.precession_equilibrium(*args, guess=(5.0, 0.9), max_steps=1)
    with pytest.raises(ValueError, match=r"guess contains NaN"):
        oj.precession_equilibrium(*args, guess=(np.nan, 0.5))
    import equinox as eqx

    solve = eqx.filter_jit(lambda g: oj.precession_equilibrium(*args, guess=g, max_steps=1).Omega)
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"did not converge"):
        jax.block_until_ready(solve(jnp.asarray([5.0, 0.9])))
