import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj

from . import reference as ref
from .conftest import assert_allclose


def random_bloch(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True) * rng.uniform(0, 1, size=(n, 1))


def test_rho_round_trip_and_spectrum():
    P = random_bloch(np.random.default_rng(1), 50)
    rho = oj.bloch_to_rho(jnp.asarray(P))
    assert rho.shape == (50, 2, 2) and rho.dtype == jnp.complex128
    assert_allclose(oj.rho_to_bloch(rho), P, rtol=0, atol=1e-15)
    assert_allclose(jnp.trace(rho, axis1=-2, axis2=-1), np.ones(50), rtol=0, atol=1e-15)
    assert_allclose(rho, np.conj(np.swapaxes(rho, -1, -2)), rtol=0, atol=1e-15)
    eig = np.linalg.eigvalsh(np.asarray(rho))
    r = np.linalg.norm(P, axis=-1)
    assert_allclose(eig, np.stack([(1 - r) / 2, (1 + r) / 2], axis=-1), rtol=0, atol=1e-14)
    assert_allclose(rho[7], ref.rho(P[7]), rtol=0, atol=1e-15)


def test_float32_states_stay_float32():
    rho = oj.bloch_to_rho(jnp.asarray([0.1, 0.2, 0.3], dtype=jnp.float32))
    assert rho.dtype == jnp.complex64
    assert oj.rho_to_bloch(rho).dtype == jnp.float32


@pytest.mark.parametrize("theta", [0.0, 0.1, 0.59, 1.2])
def test_mixing_vector_and_pure_states(theta):
    B_f = oj.mixing_vector(theta, "flavour")
    assert_allclose(B_f, [np.sin(2 * theta), 0, -np.cos(2 * theta)], rtol=0, atol=1e-15)
    assert_allclose(oj.mixing_vector(theta, "mass"), [0, 0, -1], rtol=0, atol=0)
    assert_allclose(oj.nu_e("flavour", theta), [0, 0, 1], rtol=0, atol=0)
    assert_allclose(
        oj.nu_e("mass", theta), [np.sin(2 * theta), 0, np.cos(2 * theta)], rtol=0, atol=1e-15
    )
    assert_allclose(oj.nu_x("mass", theta), -oj.nu_e("mass", theta), rtol=0, atol=0)
    # The angle between nu_e and B is a physical fact, the same in both bases.
    for basis in ("flavour", "mass"):
        cos_angle = jnp.dot(oj.nu_e(basis, theta), oj.mixing_vector(theta, basis))
        assert_allclose(cos_angle, -np.cos(2 * theta), rtol=0, atol=1e-15)
    assert_allclose(jnp.linalg.norm(B_f), 1.0, rtol=0, atol=1e-15)


def test_unknown_basis_is_rejected():
    with pytest.raises(ValueError, match="basis='flavr'"):
        oj.mixing_vector(0.1, "flavr")
    with pytest.raises(ValueError, match="basis"):
        oj.nu_e("energy")


def test_entropy():
    P = random_bloch(np.random.default_rng(2), 20)
    eig = np.linalg.eigvalsh(np.asarray(oj.bloch_to_rho(jnp.asarray(P))))
    expected = -np.sum(eig * np.log(eig), axis=-1)
    assert_allclose(oj.entropy(jnp.asarray(P)), expected, rtol=1e-12, atol=1e-14)
    assert_allclose(oj.entropy(jnp.zeros(3)), np.log(2), rtol=0, atol=1e-15)
    assert_allclose(oj.entropy(jnp.asarray([0.0, 0.6, 0.8])), 0.0, rtol=0, atol=1e-15)
    grad0 = jax.grad(oj.entropy)(jnp.zeros(3))
    assert np.all(np.isfinite(grad0)) and np.allclose(grad0, 0)
    # dS/dP = -artanh(|P|) P/|P|
    P1 = jnp.asarray([0.3, -0.2, 0.4])
    r = float(jnp.linalg.norm(P1))
    assert_allclose(
        jax.grad(oj.entropy)(P1), -np.arctanh(r) * np.asarray(P1) / r, rtol=1e-12, atol=0
    )
