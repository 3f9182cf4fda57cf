"""The research prototype's algorithm, the baseline of the benchmarks: NumPy, one pair at a
time, 2x2 density matrices built into the 4x4 pair state, `U = cos c - i sin c SWAP`, both
partial traces."""

import time

import numpy as np

SIGMA = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)
SWAP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)


def gas_encounters_per_second(n: int, n_encounters: int, rng, gamma: float = 0.01) -> float:
    """A gas of `n` neutrinos (2x2 density matrices) with fixed isotropic velocities; each
    encounter picks a uniformly random pair, applies the encounter, and writes both back."""
    P = rng.normal(size=(n, 3))
    P /= 2 * np.linalg.norm(P, axis=-1, keepdims=True)
    rhos = (np.eye(2) + np.einsum("na,aij->nij", P, SIGMA)) / 2
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    start = time.perf_counter()
    for _ in range(n_encounters):
        i, j = rng.choice(n, size=2, replace=False)
        c = gamma * (1 - v[i] @ v[j])
        U = np.cos(c) * np.eye(4) - 1j * np.sin(c) * SWAP
        pair = (U @ np.kron(rhos[i], rhos[j]) @ U.conj().T).reshape(2, 2, 2, 2)
        rhos[i] = np.einsum("ikjk->ij", pair)
        rhos[j] = np.einsum("kikj->ij", pair)
    return n_encounters / (time.perf_counter() - start)
