import functools

import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.linalg import expm

import oile_jax as oj
from oile_jax._manybody import statevector as M

from . import reference as ref
from .conftest import assert_allclose, run_options


def pure(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def op(n, k, m):
    """`m` on neutrino k (most significant first) in the 2^n space."""
    return functools.reduce(np.kron, [m if q == k else np.eye(2) for q in range(n)])


def dense_swap(n, i, j):
    return 0.5 * (
        np.eye(2**n) + sum(op(n, i, ref.SIGMA[a]) @ op(n, j, ref.SIGMA[a]) for a in range(3))
    )


def test_two_neutrinos_equal_the_encounter_map():
    rng = np.random.default_rng(0)
    B = np.asarray(oj.mixing_vector(0.4, "flavour"))
    for c in (0.1, 0.7, 2.3):
        P = pure(rng, 2)
        state = M.initial_state(jnp.asarray(P), B)
        assert_allclose(state.bloch(), P, rtol=0, atol=1e-14)
        after = M.ManyBodyState(
            psi=oj.Swap().on_state_vector(state.psi, 0, 1, c), frame=state.frame
        )
        expected = np.stack(oj.encounter(jnp.asarray(P[0]), jnp.asarray(P[1]), c))
        assert_allclose(after.bloch(), expected, rtol=0, atol=1e-14)
        # Two neutrinos: the entanglement entropy of one is that of its reduced state.
        assert_allclose(after.entropies(), oj.entropy(jnp.asarray(expected)), rtol=0, atol=1e-12)


def test_encounter_and_vacuum_against_dense_matrices():
    rng = np.random.default_rng(1)
    n = 6
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    psi /= np.linalg.norm(psi)
    for i, j, c in ((0, 1, 0.3), (4, 1, 1.1), (5, 2, 2.0)):
        U = np.cos(c) * np.eye(2**n) - 1j * np.sin(c) * dense_swap(n, i, j)
        assert_allclose(
            oj.Swap().on_state_vector(jnp.asarray(psi), i, j, c), U @ psi, rtol=0, atol=1e-14
        )
    w, t = rng.normal(size=n), 0.7
    H = sum(w[k] / 2 * op(n, k, -ref.SIGMA[2]) for k in range(n))  # B = (0, 0, -1)
    assert_allclose(
        M.vacuum_phases(n, jnp.asarray(w), t, jnp.complex128) * psi,
        np.diag(np.exp(-1j * t * np.diag(H))) @ psi,
        rtol=0,
        atol=1e-14,
    )


@pytest.mark.parametrize("n", [4, 8])
def test_trotter_converges_to_the_dense_exponential(n):
    """All-to-all Hamiltonian, fixed velocities, vacuum along a mixing-angle B; second order."""
    rng = np.random.default_rng(n)
    P, w = pure(rng, n), rng.normal(size=n)
    v = pure(rng, n)
    B = np.asarray(oj.mixing_vector(0.3, "flavour"))
    mu, t = 1.3, 1.5
    state = M.initial_state(jnp.asarray(P), B)
    # The dense H in the engine's frame (B -> -z).
    H = sum(w[k] / 2 * op(n, k, -ref.SIGMA[2]) for k in range(n))
    X = 1 - v @ v.T
    for i in range(n):
        for j in range(i + 1, n):
            H = H + mu / n * X[i, j] * dense_swap(n, i, j)
    exact = np.asarray(expm(-1j * t * jnp.asarray(H))) @ np.asarray(state.psi)
    errors = []
    steps = np.asarray([8, 16, 32])
    for k in steps:
        out = oj.all_to_all(jnp.asarray(P), omegas=w, mu=mu, t=t, n_steps=int(k), B=B, velocities=v)
        errors.append(np.max(np.abs(np.asarray(out.psi) - exact)))
    order = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 1.9 < order < 2.1, (order, errors)
    assert errors[-1] < 1e-3
    assert_allclose(out.norm(), 1.0, rtol=0, atol=1e-13)


def test_exact_and_oile_side_by_side(key):
    """Same encounters: identical after the first round (the partners are uncorrelated), the OILE
    side equals simulate_gas with the same key, and later the exact one-body states differ."""
    gas = oj.Gas((4, 4), (0.3, 0.7), [[0.6, 0, 0.8], [0.0, 0.6, -0.8]])
    kw = dict(
        gamma=0.4,
        schedule=oj.Deterministic(),
        key=key,
        n_steps=20,
        save_every=1,
        n_realizations=3,
        B=oj.mixing_vector(0.2),
    )
    sol = oj.simulate_manybody(gas, **run_options(**kw))
    assert_allclose(sol.exact[:, 1], sol.oile[:, 1], rtol=0, atol=1e-13)
    assert_allclose(sol.norm, 1.0, rtol=0, atol=1e-13)
    gas_sol = oj.simulate_gas(gas, **run_options(save_state=True, **kw))
    assert_allclose(gas_sol.state, sol.oile, rtol=0, atol=0)
    assert float(np.max(np.abs(sol.exact[:, -1] - sol.oile[:, -1]))) > 0.05
    assert_allclose(sol.exact_entropy[:, 0], 0.0, rtol=0, atol=1e-7)
    # Lepton number B . sum P and the total are conserved exactly by both.
    total0 = np.asarray(gas.initial_state(jnp.float64)).sum(0) @ np.asarray(kw["B"])
    assert_allclose(
        np.asarray(sol.exact).sum(2) @ np.asarray(kw["B"]),
        np.full((3, 21), total0),
        rtol=0,
        atol=1e-12,
    )


def test_equal_populations_equilibrate(key):
    """Four +z and four -z neutrinos, no vacuum, 80 rounds of random encounters (gamma = 0.5):
    every one-body state approaches the maximally mixed one (P -> Pbar = 0, S -> ln 2)."""
    gas = oj.Gas((4, 4), (0.0, 0.0), [[0.0, 0, 1.0], [0.0, 0, -1.0]])
    sol = oj.simulate_manybody(
        gas,
        system=oj.System(gamma=0.5),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(key=key, n_steps=80, n_realizations=4),
        saveat=oj.SaveAt(every=80),
    )
    final = np.asarray(sol.exact[:, -1])
    assert np.max(np.abs(final.sum(1))) < 1e-12  # the total stays 0
    assert np.mean(np.linalg.norm(final, axis=-1)) < 0.2
    assert np.mean(sol.exact_entropy[:, -1]) > 0.95 * np.log(2)


def test_bad_input(key):
    with pytest.raises(ValueError, match="pure states"):
        oj.simulate_manybody(
            oj.Gas((2, 2), (0.0, 0.0), [[0, 0, 0.9], [0, 0, -1.0]]),
            system=oj.System(gamma=0.1),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=key, n_steps=1),
        )
    with pytest.raises(ValueError, match="vacuum='inside'"):
        oj.simulate_manybody(
            oj.Gas((2, 2), (0.0, 0.0), [[0, 0, 1.0], [0, 0, -1.0]]),
            system=oj.System(gamma=0.1),
            schedule=oj.Deterministic(vacuum="inside"),
            sampling=oj.Sampling(key=key, n_steps=1),
        )
    with pytest.raises(ValueError, match="2 <= N <= 30"):
        M.initial_state(jnp.zeros((32, 3)).at[:, 2].set(1.0), (0.0, 0.0, -1.0))


def test_vmap_and_map_over_realizations_agree(key, monkeypatch):
    """The CPU path (lax.map) and the accelerator path (vmap) give the same numbers. Realization r
    uses fold_in(key, r), so the first three of four equal the three of a three-realization run;
    the different shape also forces a new trace through the patched path."""
    gas = oj.Gas((2, 4), (0.3, 0.7), [[0.6, 0, 0.8], [0.0, 0.6, -0.8]])
    kw = dict(
        gamma=0.3,
        schedule=oj.Stochastic(dt=0.15),
        key=key,
        n_steps=6,
        save_every=3,
        angles="fixed-velocities",
    )
    mapped = oj.simulate_manybody(gas, **run_options(n_realizations=3, **kw))
    original = M.over_realizations
    used = []

    def on_gpu(fn, keys):
        used.append(1)
        return original(fn, keys, backend="gpu")

    monkeypatch.setattr(M, "over_realizations", on_gpu)
    vmapped = oj.simulate_manybody(gas, **run_options(n_realizations=4, **kw))
    assert used, "the vmap path was not traced"
    assert_allclose(vmapped.exact[:3], mapped.exact, rtol=0, atol=1e-12)
    assert_allclose(vmapped.oile[:3], mapped.oile, rtol=0, atol=1e-12)
