"""Independent, straightforward NumPy implementations used as references by the tests.

Nothing here imports oile_jax: states are 2x2 density matrices, encounters are built as the 4x4
unitary `cos c - i sin c SWAP` acting on the Kronecker product, and the one-body states come
from explicit partial traces, the way the research prototype does it.
"""

import numpy as np

SIGMA = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)
SWAP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)


def rho(P):
    return (np.eye(2) + np.einsum("a,aij->ij", np.asarray(P, dtype=float), SIGMA)) / 2


def bloch(r):
    return np.real(np.einsum("ij,aji->a", r, SIGMA))


def swap_n(n):
    """SWAP on two n-level systems."""
    S = np.zeros((n * n, n * n), dtype=complex)
    for a in range(n):
        for b in range(n):
            S[b * n + a, a * n + b] = 1
    return S


def partial_traces(pair, n=2):
    r = pair.reshape(n, n, n, n)
    return np.einsum("ikjk->ij", r), np.einsum("kikj->ij", r)


def encounter_rho(rho_i, rho_j, c):
    """Partial traces of `U (rho_i x rho_j) U^dag`, `U = cos c - i sin c SWAP`, any n."""
    n = rho_i.shape[0]
    U = np.cos(c) * np.eye(n * n) - 1j * np.sin(c) * swap_n(n)
    pair = U @ np.kron(rho_i, rho_j) @ U.conj().T
    return partial_traces(pair, n)


def encounter(P_i, P_j, c):
    new_i, new_j = encounter_rho(rho(P_i), rho(P_j), c)
    return bloch(new_i), bloch(new_j)


def rotation(B, angle):
    """2x2 unitary of vacuum propagation, exp(-i angle B.sigma / 2)."""
    Bs = np.einsum("a,aij->ij", np.asarray(B, dtype=float), SIGMA)
    return np.cos(angle / 2) * np.eye(2) - 1j * np.sin(angle / 2) * Bs


def foreground_run(P0, P_b, *, gamma, mu, omega, B, dt, n_steps, rng, isotropic=True):
    """One realization of the stochastic foreground schedule, one step at a time."""
    r = rho(P0)
    rb = rho(P_b)
    half = rotation(B, omega * dt / 2)
    p = mu * dt / gamma
    for _ in range(n_steps):
        r = half @ r @ half.conj().T
        if rng.uniform() < p:
            x = rng.uniform(0, 2) if isotropic else 1.0
            r, _ = encounter_rho(r, rb, gamma * x)
        r = half @ r @ half.conj().T
    return bloch(r)


def isotropic_velocities(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def gas_run(P0, omegas, *, gamma, mu, B, dt, n_steps, rng, stochastic=True, angles="isotropic"):
    """One realization of the gas, one pair at a time: a fresh uniformly random perfect matching
    (numpy permutation) every step, each pair meeting with probability mu dt / gamma (stochastic)
    or always (deterministic, dt = gamma / mu); vacuum rotations split around the encounters.
    `omegas` per neutrino. Returns the final Bloch vectors, shape (N, 3)."""
    n = len(P0)
    rhos = [rho(P) for P in P0]
    halves = [rotation(B, w * dt / 2) for w in omegas]
    velocities = isotropic_velocities(rng, n) if angles == "fixed-velocities" else None
    p = mu * dt / gamma if stochastic else 1.0
    for _ in range(n_steps):
        rhos = [U @ r @ U.conj().T for U, r in zip(halves, rhos, strict=True)]
        perm = rng.permutation(n)
        for k in range(n // 2):
            i, j = perm[2 * k], perm[2 * k + 1]
            if rng.uniform() >= p:
                continue
            if angles == "isotropic":
                x = rng.uniform(0, 2)
            elif angles == "fixed-velocities":
                x = 1 - velocities[i] @ velocities[j]
            else:
                x = 1.0
            rhos[i], rhos[j] = encounter_rho(rhos[i], rhos[j], gamma * x)
        rhos = [U @ r @ U.conj().T for U, r in zip(halves, rhos, strict=True)]
    return np.stack([bloch(r) for r in rhos])
