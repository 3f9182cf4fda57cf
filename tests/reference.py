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


# Antineutrinos in the flavour basis, the way a flavour-basis code writes them: an antineutrino's
# density matrix `rbar` in its ordinary flavour states (nubar_e, nubar_x), evolving under its own
# Hamiltonian (vacuum `+omega B.sigma/2` for a real mixing matrix, matter `-lambda L.sigma/2`);
# a neutrino-antineutrino pair interacts by the flavour-blind annihilation channel
# `-2 mu x |Phi><Phi|`, `|Phi> = (|e ebar> + |x xbar>)/sqrt 2`; nu-nu and nubar-nubar pairs by
# `mu x SWAP`. The Bloch vector reported for an antineutrino is that of `rbar^T` (the
# convention in which `nubar_e` points along +z and `Pbar` obeys the equations of the
# literature): `(x, -y, z)` of `rbar`.

PHI = np.array([1, 0, 0, 1], dtype=complex) / np.sqrt(2)


def expm_hermitian(H, t):
    """exp(-i t H) of a Hermitian matrix."""
    w, V = np.linalg.eigh(H)
    return (V * np.exp(-1j * t * w)) @ V.conj().T


def one_body(omega, B, matter, L, anti):
    Bs = np.einsum("a,aij->ij", np.asarray(B, dtype=float), SIGMA)
    Ls = np.einsum("a,aij->ij", np.asarray(L, dtype=float), SIGMA)
    return (omega * Bs + (-matter if anti else matter) * Ls) / 2


def pair_hamiltonian(anti_i, anti_j, x):
    """The pair's interaction per unit `mu t` (flavour basis, ordinary antineutrino states)."""
    if anti_i == anti_j:
        return x * SWAP
    return x * (np.eye(4) - 2 * np.outer(PHI, PHI.conj()))


def to_physical(r, anti):
    P = bloch(r)
    return P * np.array([1.0, -1.0, 1.0]) if anti else P


def from_physical(P, anti):
    return rho(np.asarray(P, float) * np.array([1.0, -1.0, 1.0]) if anti else P)


def species_pair_run(
    P0, anti, omegas, *, gamma, mu, B, matter, L, x, n_steps, inverted=False, inside=False
):
    """Two particles (neutrino or antineutrino each) meeting at every step for `t = gamma/mu`
    under the pair interaction, their correlations traced out after each encounter (OILE), with
    vacuum and matter split around the encounters (or, `inside`, evolving together with the
    interaction for `t`). Returns the physical Bloch vectors after each step, shape
    (n_steps + 1, 2, 3)."""
    sign = -1.0 if inverted else 1.0
    t = gamma / mu
    ones = [one_body(sign * w, B, matter, L, a) for w, a in zip(omegas, anti, strict=True)]
    halves = [expm_hermitian(H, t / 2) for H in ones]
    U = expm_hermitian(pair_hamiltonian(anti[0], anti[1], x), gamma)
    if inside:
        pair = np.kron(ones[0], np.eye(2)) + np.kron(np.eye(2), ones[1])
        U = expm_hermitian(pair + mu * pair_hamiltonian(anti[0], anti[1], x), t)
        halves = [np.eye(2), np.eye(2)]
    rhos = [from_physical(P, a) for P, a in zip(P0, anti, strict=True)]
    out = [[to_physical(r, a) for r, a in zip(rhos, anti, strict=True)]]
    for _ in range(n_steps):
        rhos = [h @ r @ h.conj().T for h, r in zip(halves, rhos, strict=True)]
        pair = U @ np.kron(rhos[0], rhos[1]) @ U.conj().T
        rhos = list(partial_traces(pair))
        rhos = [h @ r @ h.conj().T for h, r in zip(halves, rhos, strict=True)]
        out.append([to_physical(r, a) for r, a in zip(rhos, anti, strict=True)])
    return np.asarray(out)


def species_pair_manybody(P0, anti, omegas, *, gamma, mu, B, x, n_steps):
    """The same pair without tracing out: the two-particle state vector (flavour basis) after
    each step of half vacuum, the pair unitary, half vacuum. Returns the one-body physical Bloch
    vectors, shape (n_steps + 1, 2, 3)."""
    t = gamma / mu
    half = np.kron(
        *[
            expm_hermitian(one_body(w, B, 0.0, (0, 0, 1), a), t / 2)
            for w, a in zip(omegas, anti, strict=True)
        ]
    )
    U = expm_hermitian(pair_hamiltonian(anti[0], anti[1], x), gamma)
    kets = []
    for P, a in zip(P0, anti, strict=True):
        w, V = np.linalg.eigh(from_physical(P, a))
        kets.append(V[:, np.argmax(w)])
    psi = np.kron(*kets)
    out = []
    for k in range(n_steps + 1):
        if k:
            psi = half @ (U @ (half @ psi))
        pair = np.outer(psi, psi.conj())
        r0, r1 = partial_traces(pair)
        out.append([to_physical(r0, anti[0]), to_physical(r1, anti[1])])
    return np.asarray(out)


def species_foreground_run(P0, P_b, anti, anti_b, *, gamma, mu, omega, B, matter, L, dt,
                           n_steps, rng):  # fmt: skip
    """One realization of the stochastic foreground schedule with species, in the flavour basis
    (ordinary antineutrino states), isotropic angles. Returns the physical final vector."""
    r, rb = from_physical(P0, anti), from_physical(P_b, anti_b)
    half = expm_hermitian(one_body(omega, B, matter, L, anti), dt / 2)
    H = pair_hamiltonian(anti, anti_b, 1.0)
    p = mu * dt / gamma
    for _ in range(n_steps):
        r = half @ r @ half.conj().T
        if rng.uniform() < p:
            U = expm_hermitian(H, gamma * rng.uniform(0, 2))
            r, _ = partial_traces(U @ np.kron(r, rb) @ U.conj().T)
        r = half @ r @ half.conj().T
    return to_physical(r, anti)


def species_gas_run(P0, anti, omegas, *, gamma, mu, B, matter, L, n_steps, rng, angles):
    """One realization of a gas of neutrinos and antineutrinos (deterministic rounds of
    `gamma / mu`, a fresh uniformly random perfect matching each round, vacuum and matter split
    around the encounters), in the flavour basis with ordinary antineutrino states: like
    `gas_run`, with the pair interaction of each pair's species. Returns the physical final
    vectors, shape (N, 3)."""
    n, t = len(P0), gamma / mu
    rhos = [from_physical(P, a) for P, a in zip(P0, anti, strict=True)]
    halves = [
        expm_hermitian(one_body(w, B, matter, L, a), t / 2)
        for w, a in zip(omegas, anti, strict=True)
    ]
    velocities = isotropic_velocities(rng, n) if angles == "fixed-velocities" else None
    for _ in range(n_steps):
        rhos = [U @ r @ U.conj().T for U, r in zip(halves, rhos, strict=True)]
        perm = rng.permutation(n)
        for k in range(n // 2):
            i, j = perm[2 * k], perm[2 * k + 1]
            x = rng.uniform(0, 2) if angles == "isotropic" else 1 - velocities[i] @ velocities[j]
            U = expm_hermitian(pair_hamiltonian(anti[i], anti[j], 1.0), gamma * x)
            rhos[i], rhos[j] = partial_traces(U @ np.kron(rhos[i], rhos[j]) @ U.conj().T)
        rhos = [U @ r @ U.conj().T for U, r in zip(halves, rhos, strict=True)]
    return np.stack([to_physical(r, a) for r, a in zip(rhos, anti, strict=True)])
