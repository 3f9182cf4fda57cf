"""Independent NumPy references for three flavours (nothing here imports oile_jax).

States are 3x3 density matrices; the Gell-Mann matrices are written out by hand; encounters are
the 9x9 unitary `exp(-i t H_pair)` acting on the Kronecker product, followed by explicit partial
traces. Antineutrinos live in their ordinary (physical) flavour states `sigma`: their vacuum
Hamiltonian is the complex conjugate of the neutrinos' (`U -> U^*`), their matter potential
`-lambda`, a pair of one species interacts by `x SWAP`, and a neutrino-antineutrino pair by
`-x S^{T_B}`, the partial transpose of SWAP (`3 |Phi+><Phi+|`). The code's antineutrino vector
is `Tr(sigma^T lambda^a)` (the convention of the collective-oscillation literature)."""

import numpy as np

S3 = np.sqrt(3.0)
GELL_MANN = np.array(
    [
        [[0, 1, 0], [1, 0, 0], [0, 0, 0]],
        [[0, -1j, 0], [1j, 0, 0], [0, 0, 0]],
        [[1, 0, 0], [0, -1, 0], [0, 0, 0]],
        [[0, 0, 1], [0, 0, 0], [1, 0, 0]],
        [[0, 0, -1j], [0, 0, 0], [1j, 0, 0]],
        [[0, 0, 0], [0, 0, 1], [0, 1, 0]],
        [[0, 0, 0], [0, 0, -1j], [0, 1j, 0]],
        [[1 / S3, 0, 0], [0, 1 / S3, 0], [0, 0, -2 / S3]],
    ],
    dtype=complex,
)


def rho(P):
    return np.eye(3) / 3 + np.einsum("a,aij->ij", np.asarray(P, float), GELL_MANN) / 2


def bloch(r):
    return np.real(np.einsum("ij,aji->a", r, GELL_MANN))


def pmns(t12, t13, t23, delta):
    """The PDG parametrization, element by element."""
    c12, s12, c13, s13 = np.cos(t12), np.sin(t12), np.cos(t13), np.sin(t13)
    c23, s23 = np.cos(t23), np.sin(t23)
    e = np.exp(1j * delta)
    return np.array(
        [
            [c12 * c13, s12 * c13, s13 / e],
            [-s12 * c23 - c12 * s23 * s13 * e, c12 * c23 - s12 * s23 * s13 * e, s23 * c13],
            [s12 * s23 - c12 * c23 * s13 * e, -c12 * s23 - s12 * c23 * s13 * e, c23 * c13],
        ]
    )


def expm_hermitian(H, t):
    w, V = np.linalg.eigh(H)
    return (V * np.exp(-1j * t * w)) @ V.conj().T


def swap(n=3):
    S = np.zeros((n * n, n * n))
    for a in range(n):
        for b in range(n):
            S[b * n + a, a * n + b] = 1
    return S


def partial_transpose_b(X, n=3):
    return X.reshape(n, n, n, n).transpose(0, 3, 2, 1).reshape(n * n, n * n)


def partial_traces(pair, n=3):
    r = pair.reshape(n, n, n, n)
    return np.einsum("ikjk->ij", r), np.einsum("kikj->ij", r)


def pair_hamiltonian(anti_i, anti_j, x):
    if anti_i == anti_j:
        return x * swap()
    return -x * partial_transpose_b(swap())


def one_body(omega, M, matter, anti):
    """`omega M + lambda diag(1, 0, 0)` (neutrino), `omega M^* - lambda diag(1, 0, 0)`
    (antineutrino); `M = U diag(m^2) U^dag` in the flavour basis."""
    V = np.diag([matter, 0.0, 0.0])
    return omega * np.conj(M) - V if anti else omega * M + V


def to_physical(r, anti):
    return bloch(r.T if anti else r)


def from_physical(P, anti):
    r = rho(P)
    return r.T if anti else r


def pair_run(P0, anti, omegas, *, gamma, mu, M, matter, x, n_steps):
    """Two particles meeting at every step for `t = gamma / mu` (correlations traced out after
    each encounter), vacuum and matter split around the encounters. Physical vectors after
    each step, `(n_steps + 1, 2, 8)`."""
    t = gamma / mu
    halves = [
        expm_hermitian(one_body(w, M, matter, a), t / 2) for w, a in zip(omegas, anti, strict=True)
    ]
    U = expm_hermitian(pair_hamiltonian(anti[0], anti[1], x), gamma)
    rhos = [from_physical(P, a) for P, a in zip(P0, anti, strict=True)]
    out = [[to_physical(r, a) for r, a in zip(rhos, anti, strict=True)]]
    for _ in range(n_steps):
        rhos = [h @ r @ h.conj().T for h, r in zip(halves, rhos, strict=True)]
        rhos = list(partial_traces(U @ np.kron(rhos[0], rhos[1]) @ U.conj().T))
        rhos = [h @ r @ h.conj().T for h, r in zip(halves, rhos, strict=True)]
        out.append([to_physical(r, a) for r, a in zip(rhos, anti, strict=True)])
    return np.asarray(out)


def foreground_run(P0, P_b, anti, omega, *, gamma, mu, M, matter, x, n_steps):
    """A foreground particle (physical `P0`) meeting at every step, for `t = gamma / mu`, a fresh
    background particle in the physical state `P_b` (which has no vacuum of its own); `anti`
    `(foreground, background)`. Physical foreground vectors after each step, `(n_steps + 1, 8)`."""
    t = gamma / mu
    half = expm_hermitian(one_body(omega, M, matter, anti[0]), t / 2)
    U = expm_hermitian(pair_hamiltonian(anti[0], anti[1], x), gamma)
    r, r_b = from_physical(P0, anti[0]), from_physical(P_b, anti[1])
    out = [to_physical(r, anti[0])]
    for _ in range(n_steps):
        r = half @ r @ half.conj().T
        r = partial_traces(U @ np.kron(r, r_b) @ U.conj().T)[0]
        r = half @ r @ half.conj().T
        out.append(to_physical(r, anti[0]))
    return np.asarray(out)


def gas_run(P0, anti, omegas, *, gamma, mu, M, matter, n_steps, rng):
    """One realization of deterministic rounds (`gamma / mu` each, a fresh uniformly random
    perfect matching, isotropic `x ~ U[0, 2]`), vacuum and matter split around the encounters.
    Physical final vectors `(N, 8)`."""
    n, t = len(P0), gamma / mu
    rhos = [from_physical(P, a) for P, a in zip(P0, anti, strict=True)]
    halves = [
        expm_hermitian(one_body(w, M, matter, a), t / 2) for w, a in zip(omegas, anti, strict=True)
    ]
    for _ in range(n_steps):
        rhos = [h @ r @ h.conj().T for h, r in zip(halves, rhos, strict=True)]
        perm = rng.permutation(n)
        for k in range(n // 2):
            i, j = perm[2 * k], perm[2 * k + 1]
            U = expm_hermitian(pair_hamiltonian(anti[i], anti[j], 1.0), gamma * rng.uniform(0, 2))
            rhos[i], rhos[j] = partial_traces(U @ np.kron(rhos[i], rhos[j]) @ U.conj().T)
        rhos = [h @ r @ h.conj().T for h, r in zip(halves, rhos, strict=True)]
    return np.stack([to_physical(r, a) for r, a in zip(rhos, anti, strict=True)])


def vacuum_probability(U, m2, omega_t, alpha, beta, anti=False):
    """The textbook vacuum probability `P(nu_alpha -> nu_beta)`:
    `delta - 4 sum_{i>j} Re(X) sin^2(phi_ij / 2) + 2 sum_{i>j} Im(X) sin(phi_ij)`,
    `X = U*_ai U_bi U_aj U*_bj`, `phi_ij = omega t (m_i^2 - m_j^2)`; antineutrinos `U -> U^*`."""
    U = np.conj(U) if anti else U
    p = float(alpha == beta)
    for i in range(3):
        for j in range(i):
            X = np.conj(U[alpha, i]) * U[beta, i] * U[alpha, j] * np.conj(U[beta, j])
            phi = omega_t * (m2[i] - m2[j])
            p += -4 * X.real * np.sin(phi / 2) ** 2 + 2 * X.imag * np.sin(phi)
    return p
