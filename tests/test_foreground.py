import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj
from oile_jax._foreground import model as _foreground

from . import reference as ref
from .conftest import assert_allclose, run_options

P0 = jnp.asarray([0.0, 0.0, 1.0])
P_B = jnp.asarray([0.6, 0.0, 0.6])


@pytest.mark.long  # 18 s: make test-long, in CI
def test_stochastic_mean_matches_master_equation(key):
    """Ensemble mean within 4 standard errors of the closed form, gamma in {0.01, 0.1, 0.3}.

    With vacuum (omega = 0.4, B for theta = 0.3 in the flavour basis). dt = 1e-3 for every
    gamma so that one compiled function serves all three; the time discretization of the
    Bernoulli schedule biases the mean by about mu^2 t dt / 2 = 1.5e-3 at mu t = 3, below a fifth
    of the tolerance (4 standard errors, about 0.01-0.03 here with 2000 realizations).
    """
    B = oj.mixing_vector(0.3, "flavour")
    for gamma in (0.01, 0.1, 0.3):
        sol = oj.simulate_foreground(
            P0,
            P_B,
            system=oj.System(gamma=gamma, B=B),
            schedule=oj.Stochastic(dt=1e-3),
            sampling=oj.Sampling(
                key=jax.random.fold_in(key, int(gamma * 100)), n_steps=3000, n_realizations=2000
            ),
            saveat=oj.SaveAt(every=300),
            omega=0.4,
        )
        expected = oj.foreground_mean(P0, P_B, sol.ts, gamma=gamma, omega=0.4, B=B)
        z = np.abs(np.asarray(sol.mean - expected))[1:] / np.asarray(sol.stderr)[1:]
        assert np.all(z < 4), (gamma, z.max())
        # And against the exact mean of the schedule at this dt (no discretization bias).
        exact = oj.foreground_mean(P0, P_B, sol.ts, gamma=gamma, omega=0.4, B=B, dt=1e-3)
        z = np.abs(np.asarray(sol.mean - exact))[1:] / np.asarray(sol.stderr)[1:]
        assert np.all(z < 4), (gamma, z.max())
        assert np.asarray(sol.ts)[-1] == pytest.approx(3.0, rel=1e-12)
        mean_encounters = float(jnp.mean(sol.encounters))
        # Poisson-binomial count: mean n p, standard error sqrt(n p (1 - p) / R).
        n, p = 3000, 1e-3 / gamma
        assert abs(mean_encounters - n * p) < 4 * np.sqrt(n * p * (1 - p) / 2000)


@pytest.mark.long  # 23 s: make test-long, in CI
def test_spec_reference_point_and_a_wrong_rate_is_rejected(key):
    """physics.md: P_b = (1,0,0), P(0) = (0,0,1), gamma = 0.1, stochastic: E[P_x](t=5) = 0.483848.
    The simulation matches within 4 standard errors, and the same tolerance rejects a master
    equation whose Gamma is 10% off (0.034 away here): the tolerance is sharp enough to matter."""
    sol = oj.simulate_foreground(
        [0.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
        system=oj.System(gamma=0.1),
        schedule=oj.Stochastic(dt=1e-3),
        sampling=oj.Sampling(key=key, n_steps=5000, n_realizations=4000),
        saveat=oj.SaveAt(every=5000),
    )
    mean, se = float(sol.mean[-1, 0]), float(sol.stderr[-1, 0])
    assert abs(mean - 0.483848) < 4 * se, (mean, se)
    Gamma = float(oj.master_rates(0.1)[1])
    wrong = 1 - np.exp(-1.1 * Gamma * 5.0)
    assert abs(mean - wrong) > 4 * se, (mean, wrong, se)


def test_deterministic_mean_matches_per_encounter_averages(key):
    """Deterministic schedule, isotropic angles, no vacuum: the ensemble mean follows the mean
    encounter map E[P'] = <cos^2 c> P + <sin^2 c> P_b + <sin c cos c> P_b x P, iterated."""
    gamma = 0.4
    sol = oj.simulate_foreground(
        P0,
        P_B,
        system=oj.System(gamma=gamma),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(key=key, n_steps=30, n_realizations=4000),
        saveat=oj.SaveAt(every=3),
    )
    cos2, sin2, sincos = (float(v) for v in oj.encounter_averages(gamma))
    P = np.asarray(P0)
    expected = [P]
    for n in range(1, 31):
        P = cos2 * P + sin2 * np.asarray(P_B) + sincos * np.cross(P_B, P)
        if n % 3 == 0:
            expected.append(P)
    z = np.abs(np.asarray(sol.mean) - np.stack(expected))[1:] / np.asarray(sol.stderr)[1:]
    assert np.all(z < 4), z.max()
    assert_allclose(sol.ts, gamma * 3 * np.arange(11), rtol=1e-14, atol=0)
    assert np.all(np.asarray(sol.encounters) == 30)
    # physics.md: E[P_par(n)] - b = <cos^2 c>^n (P_par(0) - b), the component along P_b.
    b = float(jnp.linalg.norm(P_B))
    par = np.stack(expected) @ (np.asarray(P_B) / b)
    assert_allclose(
        par - b, cos2 ** (3 * np.arange(11)) * (float(P0 @ P_B) / b - b), rtol=1e-12, atol=1e-14
    )


def test_against_numpy_loop(key):
    """Same stochastic schedule, run by the plain NumPy loop of tests/reference.py (4x4 density
    matrices, explicit partial traces): ensemble means agree within 4 combined standard errors."""
    kw = dict(gamma=0.2, mu=1.3, omega=0.9, B=np.asarray(oj.mixing_vector(0.5, "flavour")), dt=0.05)
    n_steps, R = 120, 300
    sol = oj.simulate_foreground(
        P0,
        P_B,
        system=oj.System(gamma=kw["gamma"], mu=kw["mu"], B=kw["B"]),
        schedule=oj.Stochastic(dt=kw["dt"]),
        sampling=oj.Sampling(key=key, n_steps=n_steps, n_realizations=R),
        saveat=oj.SaveAt(every=n_steps),
        omega=kw["omega"],
    )
    rng = np.random.default_rng(11)
    runs = np.stack(
        [
            ref.foreground_run(np.asarray(P0), np.asarray(P_B), n_steps=n_steps, rng=rng, **kw)
            for _ in range(R)
        ]
    )
    se = np.sqrt(np.asarray(sol.stderr[-1]) ** 2 + runs.std(0, ddof=1) ** 2 / R)
    assert np.all(np.abs(np.asarray(sol.mean[-1]) - runs.mean(0)) < 4 * se)
    # Both far from the initial state, so the comparison has teeth.
    assert np.linalg.norm(runs.mean(0) - np.asarray(P0)) > 10 * se.max()


@pytest.mark.parametrize("vacuum", ["split", "inside"])
def test_deterministic_fixed_angle_equals_numpy_loop(key, vacuum):
    """No randomness at all (encounter every gamma/mu at x = 1): exact agreement."""
    gamma, omega, n = 0.25, 0.8, 40
    B = np.asarray(oj.mixing_vector(0.2, "flavour"))
    sol = oj.simulate_foreground(
        P0,
        P_B,
        system=oj.System(gamma=gamma, B=B, angles="fixed-angle"),
        schedule=oj.Deterministic(vacuum=vacuum),
        sampling=oj.Sampling(key=key, n_steps=n),
        saveat=oj.SaveAt(every=n),
        omega=omega,
    )
    r, rb = ref.rho(np.asarray(P0)), ref.rho(np.asarray(P_B))
    Bs = np.einsum("a,aij->ij", B, ref.SIGMA)
    half = ref.rotation(B, omega * gamma / 2)
    H = omega / 2 * np.kron(Bs, np.eye(2)) + (gamma / gamma) * ref.SWAP  # t_int = gamma/mu = gamma
    E, V = np.linalg.eigh(H)
    U = V @ np.diag(np.exp(-1j * gamma * E)) @ V.conj().T
    for _ in range(n):
        if vacuum == "inside":
            r = ref.partial_traces(U @ np.kron(r, rb) @ U.conj().T)[0]
        else:
            r = half @ r @ half.conj().T
            r = ref.encounter_rho(r, rb, gamma)[0]
            r = half @ r @ half.conj().T
    assert_allclose(sol.P[0, -1], ref.bloch(r), rtol=0, atol=1e-13)


def test_mean_field_limit_is_first_order_in_gamma(key):
    """At fixed mu t = 2 the distance to the mean-field precession (gamma = 0 closed form)
    shrinks in proportion to gamma. Deterministic schedule at x = 1, with vacuum: no noise, so
    the fitted order is sharp. One compiled run of 400 rounds serves all gammas."""
    B = oj.mixing_vector(0.3, "flavour")
    gammas = np.array([0.04, 0.02, 0.01, 0.005])
    distances = []
    for gamma in gammas:
        rounds = round(2.0 / gamma)
        sol = oj.simulate_foreground(
            P0,
            P_B,
            system=oj.System(gamma=gamma, B=B, angles="fixed-angle"),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=key, n_steps=400),
            saveat=oj.SaveAt(every=1),
            omega=0.5,
        )
        assert float(sol.ts[rounds]) == pytest.approx(2.0, rel=1e-12)
        mean_field = oj.foreground_mean(
            P0, P_B, sol.ts[rounds : rounds + 1], gamma=0.0, omega=0.5, B=B
        )[0]
        distances.append(float(jnp.linalg.norm(sol.P[0, rounds] - mean_field)))
    order, _ = np.polyfit(np.log(gammas), np.log(distances), 1)
    assert 0.95 < order < 1.05, (order, distances)


def test_large_gamma_decoheres_to_background(key):
    for schedule in (oj.Deterministic(), oj.Stochastic(dt=3.0)):
        sol = oj.simulate_foreground(
            P0,
            P_B,
            system=oj.System(gamma=3.0),
            schedule=schedule,
            sampling=oj.Sampling(key=key, n_steps=80, n_realizations=64),
            saveat=oj.SaveAt(every=80),
        )
        distance = jnp.linalg.norm(sol.P[:, -1] - P_B, axis=-1)
        assert float(jnp.max(distance)) < 1e-6, float(jnp.max(distance))


def test_gradients_against_finite_differences(key):
    """Pathwise gradients (fixed encounter sequence) of a final observable, float64."""
    P_init = jnp.asarray([0.3, 0.2, 0.5])

    def observable(gamma, P_init):
        sol = oj.simulate_foreground(
            P_init,
            P_B,
            system=oj.System(gamma=gamma),
            schedule=oj.Stochastic(dt=0.01),
            sampling=oj.Sampling(key=key, n_steps=200, n_realizations=4),
            saveat=oj.SaveAt(every=200),
            omega=0.7,
        )
        return sol.mean[-1] @ jnp.asarray([0.2, -1.0, 0.5])

    gamma = 0.15
    g_gamma, g_P = jax.grad(observable, argnums=(0, 1))(gamma, P_init)
    h = 1e-6
    fd_gamma = (observable(gamma + h, P_init) - observable(gamma - h, P_init)) / (2 * h)
    assert_allclose(g_gamma, fd_gamma, rtol=1e-6, atol=1e-9)
    assert abs(float(g_gamma)) > 1e-3
    fd_P = [
        (observable(gamma, P_init + h * e) - observable(gamma, P_init - h * e)) / (2 * h)
        for e in jnp.eye(3)
    ]
    assert_allclose(g_P, jnp.stack(fd_P), rtol=1e-6, atol=1e-9)


def test_deterministic_gradient_against_finite_differences(key):
    def observable(gamma):
        sol = oj.simulate_foreground(
            P0,
            P_B,
            system=oj.System(gamma=gamma, angles=oj.FixedAngle(1.1)),
            schedule=oj.Deterministic(vacuum="inside"),
            sampling=oj.Sampling(key=key, n_steps=25),
            saveat=oj.SaveAt(every=25),
            omega=0.7,
        )
        return sol.P[0, -1, 1]

    h = 1e-6
    fd = (observable(0.3 + h) - observable(0.3 - h)) / (2 * h)
    assert_allclose(jax.grad(observable)(0.3), fd, rtol=1e-7, atol=1e-10)


def test_changing_parameters_does_not_recompile(key, monkeypatch):
    traces = []
    original = _foreground.Foreground.step

    def counting_step(self, P, k, s):
        traces.append(1)  # runs only while tracing
        return original(self, P, k, s)

    monkeypatch.setattr(_foreground.Foreground, "step", counting_step)
    kw = dict(key=key, n_steps=12, save_every=4, n_realizations=3)
    oj.simulate_foreground(
        P0, P_B, **run_options(gamma=0.1, omega=0.2, schedule=oj.Stochastic(dt=0.01), **kw)
    )
    oj.simulate_foreground(
        P0,
        P_B,
        **run_options(gamma=0.1, angles=oj.FixedAngle(0.4), schedule=oj.Deterministic(), **kw),
    )
    start = len(traces)
    oj.simulate_foreground(
        P0 * 0.5,
        P_B * 0.9,
        **run_options(
            gamma=0.37,
            omega=0.9,
            mu=2.0,
            B=oj.mixing_vector(0.2),
            schedule=oj.Stochastic(dt=0.02),
            **kw,
        ),
    )
    oj.simulate_foreground(
        P0,
        P_B,
        **run_options(gamma=0.7, angles=oj.FixedAngle(1.4), schedule=oj.Deterministic(), **kw),
    )
    assert len(traces) == start
    # The counter does see a new static structure (a different number of saves).
    oj.simulate_foreground(
        P0, P_B, **run_options(gamma=0.1, schedule=oj.Stochastic(dt=0.01), **{**kw, "n_steps": 16})
    )
    assert len(traces) > start


def test_reproducible_and_independent_of_chunking(key):
    kw = dict(gamma=0.1, omega=0.3, schedule=oj.Stochastic(dt=0.02), key=key)
    a = oj.simulate_foreground(
        P0, P_B, **run_options(n_steps=20, save_every=10, n_realizations=3, **kw)
    )
    b = oj.simulate_foreground(
        P0, P_B, **run_options(n_steps=20, save_every=5, n_realizations=5, **kw)
    )
    assert_allclose(a.P, b.P[:3, ::2], rtol=0, atol=0)
    c = oj.simulate_foreground(
        P0,
        P_B,
        **run_options(
            n_steps=20, save_every=10, n_realizations=3, **{**kw, "key": jax.random.key(1)}
        ),
    )
    assert not np.allclose(a.P[:, -1], c.P[:, -1])


def test_batched_foreground_neutrinos(key):
    batch = jnp.asarray([[0.0, 0, 1], [0.0, 0, -1], [0.5, 0.5, 0]])
    sol = oj.simulate_foreground(
        batch,
        P_B,
        system=oj.System(gamma=0.2),
        schedule=oj.Stochastic(dt=0.1),
        sampling=oj.Sampling(key=key, n_steps=6, n_realizations=2),
        saveat=oj.SaveAt(every=2),
    )
    assert (
        sol.P.shape == (2, 4, 3, 3)
        and sol.mean.shape == (4, 3, 3)
        and sol.encounters.shape == (2, 3)
    )
    assert_allclose(sol.P[:, 0], jnp.broadcast_to(batch, (2, 3, 3)), rtol=0, atol=0)


def test_float32(key):
    sol = oj.simulate_foreground(
        jnp.asarray(P0, jnp.float32),
        P_B,
        system=oj.System(gamma=0.1),
        schedule=oj.Stochastic(dt=0.01),
        sampling=oj.Sampling(key=key, n_steps=100),
        saveat=oj.SaveAt(every=50),
    )
    assert sol.P.dtype == jnp.float32 and sol.ts.dtype == jnp.float32
    assert float(jnp.max(jnp.linalg.norm(sol.P, axis=-1))) <= 1 + 1e-6


BAD_INPUTS = [
    (dict(P0=[0.0, 0.8, 0.8]), "P0 is unphysical"),
    (dict(P_b=[np.nan, 0.0, 0.0]), "P_b contains NaN"),
    (dict(gamma=-0.1), "gamma must be > 0"),
    (dict(gamma=0.0), "gamma must be > 0"),
    (dict(schedule=oj.Stochastic(dt=0.5)), "dt is too large for gamma"),
    (dict(angles="isotropc"), "angles='isotropc'"),
    (dict(angles="fixed-velocities"), "angles=FixedVelocities"),
    (dict(n_steps=7, save_every=2), "n_steps=7 must be a multiple of .*SaveAt.every=2"),
    (dict(n_steps=None), "exactly one of n_steps and t_max"),
    (dict(B=[0.0, 0.0, 1.5]), "B must be a unit vector"),
    (dict(mu=0.0), "mu must be > 0"),
    (dict(n_realizations=0), "n_realizations must be an integer >= 1"),
    (dict(key=42), "key must be a PRNG key"),
    (dict(P0=[0.0, 1.0]), r"P0 must have shape \(\.\.\., 3\)"),
]


@pytest.mark.parametrize("change,message", BAD_INPUTS)
def test_bad_input_names_the_argument(key, change, message):
    kw = dict(P0=P0, P_b=P_B, gamma=0.1, schedule=oj.Stochastic(dt=0.05), key=key, n_steps=4)
    kw.update(change)
    with pytest.raises(ValueError, match=message):
        oj.simulate_foreground(kw.pop("P0"), kw.pop("P_b"), **run_options(**kw))


def test_bad_options_of_schedules():
    with pytest.raises(ValueError, match="vacuum='within'"):
        oj.Deterministic(vacuum="within")
    with pytest.raises(ValueError, match="dt must be > 0"):
        oj.Stochastic(dt=-0.1)


def test_traced_bad_input_raises_at_run_time(key):
    run = eqx.filter_jit(
        lambda P: (
            oj.simulate_foreground(
                P,
                P_B,
                system=oj.System(gamma=0.1),
                schedule=oj.Stochastic(dt=0.05),
                sampling=oj.Sampling(key=key, n_steps=4),
            ).mean
        )
    )
    assert np.all(np.isfinite(run(P0)))
    with pytest.raises(eqx.EquinoxRuntimeError, match="P0 is unphysical"):
        run(jnp.asarray([0.0, 0.9, 0.9]))
    run_dt = eqx.filter_jit(
        lambda dt: (
            oj.simulate_foreground(
                P0,
                P_B,
                system=oj.System(gamma=0.1),
                schedule=oj.Stochastic(dt=dt),
                sampling=oj.Sampling(key=key, n_steps=4),
            ).mean
        )
    )
    with pytest.raises(eqx.EquinoxRuntimeError, match="dt is too large for gamma"):
        run_dt(0.5)
    # A traced mu(t) profile is checked once where the run starts (not in every step).
    run_profile = eqx.filter_jit(
        lambda value: (
            oj.simulate_foreground(
                P0,
                P_B,
                system=oj.System(gamma=0.1, mu=oj.Exponential(value, 1.0)),
                schedule=oj.Stochastic(dt=0.05),
                sampling=oj.Sampling(key=key, n_steps=4),
            ).mean
        )
    )
    assert np.all(np.isfinite(run_profile(1.0)))
    for value in (3.0, -1.0):  # p = 1.5 at t = 0; mu < 0
        with pytest.raises(eqx.EquinoxRuntimeError, match=r"mu\(t\) must be >= 0 at every"):
            run_profile(value)
