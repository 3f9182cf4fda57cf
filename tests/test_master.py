import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj

from .conftest import assert_allclose


def test_spec_reference_value():
    P = oj.foreground_mean(
        jnp.asarray([0.0, 0, 1]), jnp.asarray([1.0, 0, 0]), jnp.asarray([5.0]), gamma=0.1
    )
    assert_allclose(P[0, 0], 0.483848, rtol=0, atol=5e-7)


@pytest.mark.parametrize("gamma", [1e-5, 3e-3, 0.00999, 0.01001, 0.05, 0.3, 1.0, 2.5])
def test_rates_and_averages_against_direct_formulas(gamma):
    g = np.float64(gamma)
    mu_R, Gamma = oj.master_rates(gamma, 2.0)
    # The direct formulas cancel catastrophically at small gamma; compare with a tolerance set
    # by that cancellation (eps / gamma^2 relative), tight elsewhere.
    rtol = max(1e-13, 1e-15 / g**2)
    assert_allclose(mu_R, 2.0 * np.sin(2 * g) ** 2 / (4 * g**2), rtol=rtol, atol=0)
    assert_allclose(Gamma, 2.0 / g * (0.5 - np.sin(4 * g) / (8 * g)), rtol=rtol, atol=0)
    cos2, sin2, sincos = oj.encounter_averages(gamma)
    x = (np.arange(200000) + 0.5) / 200000 * 2  # midpoint rule on U[0, 2]
    c = g * x
    assert_allclose(cos2, np.mean(np.cos(c) ** 2), rtol=1e-9, atol=0)
    assert_allclose(sin2, np.mean(np.sin(c) ** 2), rtol=1e-9, atol=1e-16)
    assert_allclose(sincos, np.mean(np.sin(c) * np.cos(c)), rtol=1e-9, atol=0)


def test_rates_small_gamma_expansions():
    for g in (1e-3, 1e-2, 3e-2):
        mu_R, Gamma = oj.master_rates(g)
        assert abs(float(mu_R) - (1 - 4 / 3 * g**2)) < g**4
        assert abs(float(Gamma) - 4 / 3 * g * (1 - 4 / 5 * g**2)) < g**5
    mu_R0, Gamma0 = oj.master_rates(0.0)
    assert float(mu_R0) == 1.0 and float(Gamma0) == 0.0
    # Smooth through the switch between series and direct formula, derivatives included.
    dG = jax.vmap(jax.grad(lambda g: oj.master_rates(g)[1]))(
        jnp.asarray([0.01 - 1e-9, 0.01 + 1e-9])
    )
    assert_allclose(dG[0], dG[1], rtol=1e-7, atol=0)


def test_solves_the_master_equation_with_vacuum():
    P0 = jnp.asarray([0.3, -0.5, 0.7])
    P_b = jnp.asarray([0.2, 0.6, -0.4])
    B = oj.mixing_vector(0.4, "flavour")
    gamma, mu, omega = 0.2, 1.5, 0.7
    ts = jnp.linspace(0.0, 4.0, 9)
    h = 1e-5
    P = oj.foreground_mean(P0, P_b, ts, gamma=gamma, mu=mu, omega=omega, B=B)
    dP = (
        oj.foreground_mean(P0, P_b, ts + h, gamma=gamma, mu=mu, omega=omega, B=B)
        - oj.foreground_mean(P0, P_b, ts - h, gamma=gamma, mu=mu, omega=omega, B=B)
    ) / (2 * h)
    mu_R, Gamma = oj.master_rates(gamma, mu)
    rhs = jnp.cross(omega * B + mu_R * P_b, P) - Gamma * (P - P_b)
    assert_allclose(dP, rhs, rtol=0, atol=1e-9)
    assert_allclose(P[0], P0, rtol=0, atol=1e-15)


def test_closed_form_without_vacuum():
    """P_par relaxes to b = |P_b| at rate Gamma; P_perp rotates right-handedly about P_b at
    mu_R |P_b| and decays at Gamma (physics.md section 5)."""
    P_b = jnp.asarray([0.8, 0.0, 0.0])
    P0 = jnp.asarray([0.1, 0.0, 0.9])
    gamma = 0.3
    ts = jnp.linspace(0.0, 6.0, 13)
    P = np.asarray(oj.foreground_mean(P0, P_b, ts, gamma=gamma))
    mu_R, Gamma = (float(v) for v in oj.master_rates(gamma))
    decay = np.exp(-Gamma * np.asarray(ts))
    assert_allclose(P[:, 0], 0.8 + (0.1 - 0.8) * decay, rtol=0, atol=1e-13)
    phase = mu_R * 0.8 * np.asarray(ts)
    # right-handed about +x: z -> -y
    assert_allclose(P[:, 1], -0.9 * np.sin(phase) * decay, rtol=0, atol=1e-13)
    assert_allclose(P[:, 2], 0.9 * np.cos(phase) * decay, rtol=0, atol=1e-13)


def test_mean_field_limit_conserves_length():
    P0 = jnp.asarray([0.0, 0.6, 0.8])
    ts = jnp.linspace(0, 30, 31)
    P = oj.foreground_mean(P0, jnp.asarray([0.5, 0.5, 0.0]), ts, gamma=0.0, omega=0.3)
    assert_allclose(jnp.linalg.norm(P, axis=-1), np.ones(31), rtol=0, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="P0 is unphysical"):
        oj.foreground_mean([0.0, 0.8, 0.8], [1.0, 0, 0], [1.0], gamma=0.1)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        oj.foreground_mean([0.0, 0, 1], [1.0, 0, 0], [1.0], gamma=-0.1)
    with pytest.raises(ValueError, match="P_b contains NaN"):
        oj.foreground_mean([0.0, 0, 1], [np.nan, 0, 0], [1.0], gamma=0.1)
    with pytest.raises(ValueError, match="B must be a unit vector"):
        oj.foreground_mean([0.0, 0, 1], [1.0, 0, 0], [1.0], gamma=0.1, B=[0, 0, 2.0])


def test_discrete_schedule_mean():
    """`dt` given: the exact mean of the Bernoulli schedule, against the mean map iterated
    step by step; and convergence to the master equation at first order in dt."""
    P0, P_b = np.asarray([0.1, -0.3, 0.9]), np.asarray([0.5, 0.2, 0.6])
    B = np.asarray(oj.mixing_vector(0.35, "flavour"))
    gamma, mu, omega, dt = 0.2, 1.2, 0.8, 0.05
    cos2, sin2, sincos = (float(v) for v in oj.encounter_averages(gamma))
    p = mu * dt / gamma
    half = lambda P: np.asarray(oj.vacuum_rotation(jnp.asarray(P), omega * dt / 2, jnp.asarray(B)))
    P, iterated = P0, [P0]
    for _ in range(40):
        P = half(P)
        P = P + p * (sin2 * (P_b - P) + sincos * np.cross(P_b, P))
        P = half(P)
        iterated.append(P)
    ts = dt * np.arange(41)
    exact = oj.foreground_mean(P0, P_b, ts, gamma=gamma, mu=mu, omega=omega, B=B, dt=dt)
    assert_allclose(exact, np.stack(iterated), rtol=0, atol=1e-13)

    continuous = oj.foreground_mean(
        P0, P_b, jnp.asarray([3.0]), gamma=gamma, mu=mu, omega=omega, B=B
    )
    steps = np.asarray([0.02, 0.01, 0.005, 0.0025])
    errors = [
        float(
            jnp.max(
                jnp.abs(
                    oj.foreground_mean(
                        P0, P_b, jnp.asarray([3.0]), gamma=gamma, mu=mu, omega=omega, B=B, dt=h
                    )
                    - continuous
                )
            )
        )
        for h in steps
    ]
    order = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 0.95 < order < 1.05, (order, errors)
    with pytest.raises(ValueError, match="dt is too large for gamma"):
        oj.foreground_mean(P0, P_b, ts, gamma=0.01, dt=0.05)
