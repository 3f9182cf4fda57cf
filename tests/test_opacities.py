"""Collisions with the medium (physics.md section 13): emission, absorption and scattering in
the mean fields, against an independent NumPy loop over occupation matrices, closed-form
relaxation, conservation, and the collisional flavour instability at the parameters of Emu's test
(AMReX-Astro/Emu, Scripts/tests/coll_inst_test.py) against an exact linearization in NumPy and
against Johns's first-order growth rate (arXiv:2104.11369, eq. 14)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj
from oile_jax._physics.flavours import gell_mann

jax.config.update("jax_enable_x64", True)


# ---------------------------------------------------------------------------------------------
# An independent implementation: occupation matrices, commutators and anticommutators, one class
# at a time.


def matrices(Q, n):
    """Occupation matrices `(N/n) 1 + P.lambda/2` of states `(K, 1 + D)`."""
    lam = gell_mann(n)
    return [Q[k, 0] / n * np.eye(n) + np.einsum("a,aij->ij", Q[k, 1:], lam) / 2 for k in
            range(len(Q))]  # fmt: skip


def components(f, n):
    lam = gell_mann(n)
    return np.concatenate([[np.trace(f).real], np.einsum("ij,aji->a", f, lam).real])


def numpy_field(Q, *, n, omegas, anti, B, weights, coupling, mu, rate, feq, L=None, lam=0.0,
                kernel=None):  # fmt: skip
    """`dQ/dt` of states `(K, 1 + D)`: `-i[H_k, f_k] + E_k - {Gamma_k, f_k}/2` plus scattering
    `sum_h k_kh w_h f_h - (sum_h w_h k_hk) f_k`, with `H_k = (+/- omega_k B + lam L +
    mu sum_h w_h coupling_kh s_h) . lambda / 2`, `s_h = P_h` or `-Pbar_h`."""
    gm = gell_mann(n)
    K = len(Q)
    f = matrices(Q, n)
    s = [(-1 if anti[h] else 1) * Q[h, 1:] for h in range(K)]
    out = np.zeros_like(Q)
    for k in range(K):
        h = (-1 if anti[k] else 1) * omegas[k] * np.asarray(B)
        if L is not None:
            h = h + lam * np.asarray(L)
        for j in range(K):
            h = h + mu * weights[j] * coupling[k][j] * s[j]
        H = np.einsum("a,aij->ij", h, gm) / 2
        G = np.diag(rate[k]).astype(complex)
        E = np.diag(rate[k] * feq[k]).astype(complex)
        df = -1j * (H @ f[k] - f[k] @ H) + E - (G @ f[k] + f[k] @ G) / 2
        if kernel is not None:
            for j in range(K):
                df = df + kernel[k][j] * weights[j] * f[j] - weights[j] * kernel[j][k] * f[k]
        out[k] = components(df, n)
    return out


def numpy_reemission(P, *, n, rate, feq):
    """`dP/dt` of trace-1 states `(K, D)` under `Tr(Gamma rho) sigma - {Gamma, rho}/2`,
    `sigma` proportional to `Gamma f_eq`, by matrices."""
    out = np.zeros_like(P)
    for k in range(len(P)):
        rho = matrices(np.concatenate([[1.0], P[k]])[None], n)[0]
        G = np.diag(rate[k]).astype(complex)
        sigma = np.diag(rate[k] * feq[k] / np.sum(rate[k] * feq[k])).astype(complex)
        drho = np.trace(G @ rho) * sigma - (G @ rho + rho @ G) / 2
        out[k] = components(drho, n)[1:]
    return out


def random_states(rng, K, n, scale=1.0):
    """Occupation-like states: traces in [1, 2], Bloch vectors well inside."""
    D = n * n - 1
    N = 1 + rng.random(K)
    P = rng.normal(size=(K, D))
    P = 0.5 * N[:, None] * P / np.linalg.norm(P, axis=1, keepdims=True)
    return scale * np.concatenate([N[:, None], P], axis=1)


@pytest.mark.parametrize("n", [2, 3])
def test_field_matches_numpy_loop(n):
    """Beams of several energies, both species, matter, isotropic scattering: the O(G) field
    equals the NumPy loop over occupation matrices, in two and three flavours."""
    rng = np.random.default_rng(4)
    dirs = np.array([[0, 0, 1.0], [0, 0.6, 0.8], [0.6, 0, -0.8]])
    # Three directions at each of two energies, for neutrinos and antineutrinos: 12 classes.
    directions = np.tile(dirs, (4, 1))
    omegas = np.repeat([0.3, 0.7, 0.3, 0.7], 3)
    anti = np.repeat([False, False, True, True], 3)
    weights = rng.random(12) / 6
    K = 12
    rate = rng.random((K, n)) * 2
    feq = rng.random((K, n))
    scattering = rng.random(K)
    if n == 2:
        B, L = np.asarray(oj.mixing_vector(0.3)), np.array([0, 0, 1.0])
    else:
        B = np.asarray(oj.pmns_vacuum("normal", "flavour"))
        L = np.asarray(oj.flavour_axis(3))
    ops = oj.Opacities(rate, feq, scattering=scattering)
    system = oj.System(0.1, mu=1.7, B=B, angles=oj.Beams(directions), matter=0.4, opacities=ops)
    field = oj.GroupField(weights, omegas, system, antineutrino=anti)
    Q = random_states(rng, K, n)
    ours = np.asarray(field(0.0, jnp.asarray(Q)))
    coupling = 1 - directions @ directions.T
    # Isotropic scattering as its kernel: from h into g at s_h / W_g among the same energy and
    # species.
    same = (omegas[:, None] == omegas[None]) & (anti[:, None] == anti[None])
    W = same @ weights
    kernel = same * scattering[None, :] / W[:, None]
    ref = numpy_field(Q, n=n, omegas=omegas, anti=anti, B=B, weights=weights, coupling=coupling,
                      mu=1.7, rate=rate, feq=feq, L=L, lam=0.4, kernel=kernel)  # fmt: skip
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    # The same kernel given as a kernel.
    system_k = oj.System(0.1, mu=1.7, B=B, angles=oj.Beams(directions), matter=0.4,
                         opacities=oj.Opacities(rate, feq, kernel=kernel))  # fmt: skip
    field_k = oj.GroupField(weights, omegas, system_k, antineutrino=anti)
    np.testing.assert_allclose(
        np.asarray(field_k(0.0, jnp.asarray(Q))), ref, rtol=0, atol=1e-12 * np.abs(ref).max()
    )


def test_multi_angle_field_matches_numpy_loop():
    """Fixed velocities with emission, absorption and a kernel, and a time profile of the rates."""
    rng = np.random.default_rng(7)
    N = 6
    v = rng.normal(size=(N, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    omegas = rng.random(N)
    rate, feq = rng.random((N, 2)), rng.random((N, 2))
    kernel = rng.random((N, N))
    scale = oj.Samples(jnp.array([0.0, 2.0]), jnp.array([1.0, 3.0]))
    B = np.asarray(oj.mixing_vector(0.2))
    system = oj.System(0.1, mu=0.9, B=B, opacities=oj.Opacities(rate, feq, kernel=kernel,
                                                                 scale=scale))  # fmt: skip
    field = oj.MultiAngleField(omegas, v, system)
    Q = random_states(rng, N, 2)
    t = 1.0  # the rates doubled
    ours = np.asarray(field(t, jnp.asarray(Q)))
    coupling = (1 - v @ v.T) / (N - 1)
    np.fill_diagonal(coupling, 0.0)
    ref = numpy_field(Q, n=2, omegas=omegas, anti=np.zeros(N, bool), B=B, weights=np.ones(N),
                      coupling=coupling, mu=0.9, rate=2 * rate, feq=feq,
                      kernel=2 * kernel)  # fmt: skip
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_from_emission_is_the_relaxation_form():
    E, A = np.array([[0.6, 0.1], [0.0, 0.0]]), np.array([[0.2, 0.3], [0.5, 0.0]])
    ops = oj.Opacities.from_emission(E, A)
    np.testing.assert_allclose(ops.rate, E + A)
    np.testing.assert_allclose(ops.equilibrium, [[0.75, 0.25], [0.0, 0.0]])


# ---------------------------------------------------------------------------------------------
# Closed forms and conservation.


def test_relaxation_two_flavours_closed_form():
    """No mixing (B along the flavour axis): each flavour's occupation relaxes to f_eq at its
    rate, the coherence decays at the mean of the two rates, whatever the mean field does."""
    Gamma, feq = np.array([1.3, 0.4]), np.array([0.7, 0.2])
    ops = oj.Opacities(Gamma, feq)
    system = oj.System(0.1, mu=2.0, B=oj.mixing_vector(0.0), opacities=ops)
    field = oj.GroupField([1.0], [0.5], system)
    f0 = np.array([0.1, 0.9])  # occupations of e and x
    coherence = 0.2
    Q0 = jnp.array([[f0.sum(), 2 * coherence, 0.0, f0[0] - f0[1]]])
    ts = jnp.linspace(0.0, 3.0, 7)
    P = np.asarray(oj.solve_meanfield(field, Q0, ts, rtol=1e-11, atol=1e-13).P[:, 0])
    t = np.asarray(ts)[:, None]
    f = feq + (f0 - feq) * np.exp(-Gamma * t)
    np.testing.assert_allclose(P[:, 0], f.sum(axis=1), rtol=1e-9)
    np.testing.assert_allclose(P[:, 3], f[:, 0] - f[:, 1], rtol=0, atol=1e-9)
    transverse = np.hypot(P[:, 1], P[:, 2])
    np.testing.assert_allclose(transverse, 2 * coherence * np.exp(-Gamma.mean() * t[:, 0]),
                               rtol=1e-8)  # fmt: skip


def test_relaxation_three_flavours_closed_form():
    """Three flavours, flavour-diagonal vacuum: every occupation relaxes at its own rate and the
    e-mu coherence decays at `(Gamma_e + Gamma_mu) / 2`."""
    Gamma, feq = np.array([1.5, 0.5, 0.2]), np.array([0.6, 0.3, 0.1])
    lam = gell_mann(3)
    B = np.real(np.einsum("ij,aji->a", np.diag([0.0, 0.03, 1.0]), lam))  # diagonal masses
    system = oj.System(0.1, mu=1.0, B=B, opacities=oj.Opacities(Gamma, feq))
    field = oj.GroupField([1.0], [1.0], system)
    f0 = np.diag([0.2, 0.5, 0.9]).astype(complex)
    f0[0, 1], f0[1, 0] = 0.1, 0.1
    Q0 = jnp.asarray(components(f0, 3)[None])
    ts = jnp.linspace(0.0, 2.0, 5)
    Q = np.asarray(oj.solve_meanfield(field, Q0, ts, rtol=1e-11, atol=1e-13).P[:, 0])
    for k, t in enumerate(np.asarray(ts)):
        f = matrices(Q[k][None], 3)[0]
        np.testing.assert_allclose(
            np.real(np.diag(f)), feq + (np.diag(f0).real - feq) * np.exp(-Gamma * t), atol=1e-9
        )
        np.testing.assert_allclose(abs(f[0, 1]), 0.1 * np.exp(-(Gamma[0] + Gamma[1]) / 2 * t),
                                   rtol=1e-8)  # fmt: skip


def test_isotropic_scattering_conserves_and_isotropizes():
    """Scattering alone among the rings of an axisymmetric grid: the weighted traces and
    `|sum w P|` are kept, and each ring's trace relaxes to the angular mean at the rate `s`."""
    u, w = oj.angle_grid(8)
    s = 1.7
    ops = oj.Opacities(0.0, 0.0, scattering=s)
    system = oj.System(0.1, mu=1.0, B=oj.mixing_vector(0.2), angles=oj.Axisymmetric(u),
                       opacities=ops)  # fmt: skip
    field = oj.GroupField(w, np.full(8, 0.4), system)
    rng = np.random.default_rng(1)
    Q0 = random_states(rng, 8, 2)
    ts = jnp.linspace(0.0, 2.0, 5)
    Q = np.asarray(oj.solve_meanfield(field, jnp.asarray(Q0), ts, rtol=1e-11, atol=1e-13).P)
    mean = w @ Q0[:, 0]
    np.testing.assert_allclose(Q[:, :, 0] @ w, mean, rtol=1e-10)
    D = np.einsum("g,tga->ta", w, Q[:, :, 1:])
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), np.linalg.norm(D[0]), rtol=1e-9)
    expected = mean + (Q0[:, 0] - mean) * np.exp(-s * np.asarray(ts))[:, None]
    np.testing.assert_allclose(Q[:, :, 0], expected, rtol=1e-9)


def test_what_the_collision_terms_keep():
    """Emission and absorption keep neither the number nor the lepton number of a flavour: with
    the electron flavours absorbed at different rates for neutrinos and antineutrinos, the
    electron lepton number `f_ee - fbar_ee` follows the closed form away from its start, while
    the x flavour, never absorbed, keeps its occupation to rounding. `Reemission` keeps each
    class's number (its Lindblad term has trace 0 in the NumPy loop) but not the lepton number
    either."""
    ops = oj.Opacities([[1.0, 0.0], [0.5, 0.0]], [[0.2, 0.0], [0.9, 0.0]])
    system = oj.System(0.1, mu=1.0, B=oj.mixing_vector(0.0), opacities=ops)
    field = oj.GroupField([0.5, 0.5], [0.3, 0.3], system, antineutrino=[False, True])
    f0 = np.array([[0.6, 0.3], [0.4, 0.3]])  # (nu, nubar) x (e, x)
    Q0 = jnp.asarray([[f.sum(), 0.0, 0.0, f[0] - f[1]] for f in f0])
    ts = jnp.linspace(0.0, 2.0, 5)
    Q = np.asarray(oj.solve_meanfield(field, Q0, ts, rtol=1e-11, atol=1e-13).P)
    f_e, f_x = (Q[..., 0] + Q[..., 3]) / 2, (Q[..., 0] - Q[..., 3]) / 2
    np.testing.assert_allclose(f_x, 0.3, rtol=0, atol=1e-12)
    t = np.asarray(ts)[:, None]
    closed = np.array([0.2, 0.9]) + (f0[:, 0] - np.array([0.2, 0.9])) * np.exp(
        -np.array([1.0, 0.5]) * t
    )
    np.testing.assert_allclose(f_e, closed, rtol=0, atol=1e-10)
    lepton = f_e[:, 0] - f_e[:, 1]
    assert abs(lepton[-1] - lepton[0]) > 0.3
    rng = np.random.default_rng(5)
    for n in (2, 3):
        P = random_states(rng, 3, n)[:, 1:] / 2
        rate, feq = rng.random((3, n)), rng.random((3, n))
        drho = numpy_reemission(P, n=n, rate=rate, feq=feq)
        ours = np.asarray(oj.Reemission(rate, feq).change(0.0, jnp.asarray(P.T))).T
        np.testing.assert_allclose(ours, drho, rtol=0, atol=1e-13)
        for k in range(3):  # the trace of the Lindblad term
            rho = matrices(np.concatenate([[1.0], P[k]])[None], n)[0]
            G = np.diag(rate[k])
            sigma = np.diag(rate[k] * feq[k] / np.sum(rate[k] * feq[k]))
            drho_k = np.trace(G @ rho) * sigma - (G @ rho + rho @ G) / 2
            assert abs(np.trace(drho_k)) < 1e-14
        assert np.abs(drho[:, 2]).max() > 1e-3  # lambda_3 (e minus the next flavour) moves


# ---------------------------------------------------------------------------------------------
# The collisional flavour instability at Emu's parameters (Emu's coll_inst_test.py: the
# facts, in its units), by an exact linearization written here in NumPy.

HBAR = 6.6260755e-27 / (2 * np.pi)  # erg s
C = 2.99792458e10  # cm/s
MEV = 1.60218e-6  # erg
GF = 1.1663787e-5 / (1000 * MEV) ** 2 * (HBAR * C) ** 3  # erg cm^3
MU = np.sqrt(2) * GF / HBAR  # s^-1 cm^3
NEE, NEEBAR, NXX = 3e33, 2.5e33, 1e33  # cm^-3
OMEGA = 0.304e-5 * C  # s^-1


def emu_rates(rescale):
    """`Gamma_e`, `Gammabar_e` (s^-1) of Emu's test with its opacities scaled by `rescale`
    (Emu's test: 1e4); the x flavours are not absorbed."""
    return C * rescale / 0.417e5, C * rescale / 4.36e5


def johns_eq14(rescale):
    """Johns's growth rate (his eq. 14, first order in the rates), in s^-1."""
    Ge, Gb = emu_rates(rescale)
    Gp, Gbp = Ge / 2, Gb / 2
    S = NEE - NXX + NEEBAR - NXX
    D = NEE - NEEBAR
    return (Gp - Gbp) / 2 * MU * S / np.sqrt((MU * D) ** 2 + 4 * OMEGA * MU * S) - (Gp + Gbp) / 2


def exact_rate_numpy(rescale):
    """The largest growth rate (s^-1) of the isotropic two-flavour QKE linearized about its
    flavour-diagonal equilibrium, written with half-trace and half-Bloch components
    `(P0, P)`, `(Pbar0, Pbar)` as in Emu's test, `dP/dt = (omega B + mu (P - Pbar)) x P +` the
    relaxation, by central differences."""
    Ge, Gb = emu_rates(rescale)
    Gp, Gm, Gbp, Gbm = Ge / 2, Ge / 2, Gb / 2, Gb / 2
    B = np.array([0.0, 0.0, -1.0])
    eq = np.array([(NEE + NXX) / 2, 0, 0, (NEE - NXX) / 2, (NEEBAR + NXX) / 2, 0, 0,
                   (NEEBAR - NXX) / 2])  # fmt: skip

    def F(y):
        P0, P, Pb0, Pb = y[0], y[1:4], y[4], y[5:8]
        H = OMEGA * B + MU * (P - Pb)
        Hb = -OMEGA * B + MU * (P - Pb)
        dP = np.cross(H, P) - Gp * P
        dP[2] = np.cross(H, P)[2] + Gp * (eq[3] - P[2]) + Gm * (eq[0] - P0)
        dPb = np.cross(Hb, Pb) - Gbp * Pb
        dPb[2] = np.cross(Hb, Pb)[2] + Gbp * (eq[7] - Pb[2]) + Gbm * (eq[4] - Pb0)
        dP0 = Gp * (eq[0] - P0) + Gm * (eq[3] - P[2])
        dPb0 = Gbp * (eq[4] - Pb0) + Gbm * (eq[7] - Pb[2])
        return np.concatenate([[dP0], dP, [dPb0], dPb])

    J = np.zeros((8, 8))
    step = 1e-6 * np.abs(eq).max()
    for k in range(8):
        e = np.zeros(8)
        e[k] = step
        J[:, k] = (F(eq + e) - F(eq - e)) / (2 * step)
    return np.linalg.eigvals(J).real.max()


def emu_field(rescale, theta=0.0):
    """Emu's test in the package's units: states in units of `NXX`, times in units of
    `T = 2 / (MU NXX)` (so that the package's `mu` is 1: its Bloch vectors are twice Emu's
    halves), a neutrino and an antineutrino group of weight 1. Returns the field, the
    equilibrium and `T`."""
    T = 2 / (MU * NXX)
    Ge, Gb = emu_rates(rescale)
    rate = T * np.array([[Ge, 0.0], [Gb, 0.0]])
    feq = np.array([[NEE, NXX], [NEEBAR, NXX]]) / NXX
    system = oj.System(0.1, mu=1.0, B=oj.mixing_vector(theta), opacities=oj.Opacities(rate, feq))
    field = oj.GroupField([1.0, 1.0], [T * OMEGA] * 2, system, antineutrino=[False, True])
    state = np.array([[feq[k].sum(), 0, 0, feq[k, 0] - feq[k, 1]] for k in range(2)])
    return field, state, T


@pytest.mark.parametrize("rescale", [1e4, 1e2])
def test_collisional_instability_growth_rate(rescale):
    """`linear_stability` about the collisional equilibrium equals the NumPy linearization;
    at Emu's parameters it is 0.902 of Johns's first-order eq. 14, at 1/100 of them within
    3e-5 of it."""
    field, state, T = emu_field(rescale)
    ours = float(oj.linear_stability(field, state).growth_rate) / T  # s^-1
    exact = exact_rate_numpy(rescale)
    assert ours > 0
    np.testing.assert_allclose(ours, exact, rtol=1e-6)
    ratio = ours / johns_eq14(rescale)
    if rescale == 1e4:
        assert abs(ratio - 0.902) < 5e-4, ratio  # eq. 14 is first order in the rates
    else:
        assert abs(ratio - 1) < 3e-5, ratio


def test_collisional_instability_simulated_growth():
    """Solved from the equilibrium with a small mixing angle as the seed (as Emu's test), the
    coherence grows at `linear_stability`'s rate (fit over its linear phase, within 1e-3)."""
    field, state, T = emu_field(1e4, theta=1e-9)
    rate = float(oj.linear_stability(emu_field(1e4)[0], state).growth_rate)
    ts = jnp.linspace(0.0, 20 / rate, 81)
    P = np.asarray(oj.solve_meanfield(field, jnp.asarray(state), ts, rtol=1e-10, atol=1e-16).P)
    coherence = np.hypot(P[:, 0, 1], P[:, 0, 2])
    window = (np.asarray(ts) > 4 / rate) & (coherence < 1e-4 * state[0, 3])
    assert window.sum() > 30
    slope = np.polyfit(np.asarray(ts)[window], np.log(coherence[window]), 1)[0]
    np.testing.assert_allclose(slope, rate, rtol=1e-3)


def _eln_rings(A=12):
    """An axisymmetric gas with an ELN crossing: neutrino rings forward-peaked, antineutrino
    rings more so (weights `0.8` of theirs), no vacuum; the classes' directions and weights."""
    u, w = oj.angle_grid(A)
    gauss = lambda width: np.exp(-((1 - u) ** 2) / (2 * width**2))
    fnu = w * gauss(1.0) / (w @ gauss(1.0))
    fbar = 0.8 * w * gauss(0.5) / (w @ gauss(0.5))
    return np.concatenate([u, u]), np.concatenate([fnu, fbar]), np.repeat([False, True], A)


@pytest.mark.long  # about 13 s: make test-long, in CI (the default suite's 10 minutes)
def test_fast_instability_with_collisions():
    """The mixed fast-collisional case. With one rate for every flavour and class, damping
    shifts the fast instability's growth rate by exactly `-Gamma`; with unequal rates for
    neutrinos and antineutrinos, `linear_stability` equals the NumPy loop's linearization."""
    u, f, anti = _eln_rings(8)
    K = u.size
    B = np.array([0.0, 0.0, -1.0])
    angles = oj.Axisymmetric(u)
    pure = oj.GroupField(f, np.zeros(K), oj.System(0.1, mu=1.0, B=B, angles=angles),
                         antineutrino=anti)  # fmt: skip
    fast = float(oj.linear_stability(pure, np.tile([0.0, 0.0, 1.0], (K, 1))).growth_rate)
    assert fast > 0.01
    state = np.tile([1.0, 0.0, 0.0, 1.0], (K, 1))  # every class all electron flavour
    for Gamma in (0.05, 0.5 * fast):
        ops = oj.Opacities(Gamma, [1.0, 0.0])
        field = oj.GroupField(f, np.zeros(K), oj.System(0.1, mu=1.0, B=B, angles=angles,
                              opacities=ops), antineutrino=anti)  # fmt: skip
        rate = float(oj.linear_stability(field, state).growth_rate)
        np.testing.assert_allclose(rate, fast - Gamma, rtol=0, atol=1e-9)
    rate = np.where(anti[:, None], [[0.1, 0.0]], [[0.3, 0.0]])
    ops = oj.Opacities(rate, [1.0, 0.0])
    field = oj.GroupField(f, np.zeros(K), oj.System(0.1, mu=1.0, B=B, angles=angles,
                          opacities=ops), antineutrino=anti)  # fmt: skip
    ours = float(oj.linear_stability(field, state).growth_rate)

    def F(x):
        return numpy_field(x.reshape(K, 4), n=2, omegas=np.zeros(K), anti=anti, B=B, weights=f,
                           coupling=1 - np.outer(u, u), mu=1.0, rate=rate,
                           feq=np.tile([1.0, 0.0], (K, 1))).reshape(-1)  # fmt: skip

    h = 1e-6
    x0 = state.reshape(-1)
    J = np.stack([(F(x0 + h * e) - F(x0 - h * e)) / (2 * h) for e in np.eye(4 * K)], axis=1)
    expected = np.linalg.eigvals(J).real.max()
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    assert abs(ours - fast) > 1e-3  # the rates change it


# ---------------------------------------------------------------------------------------------
# Reemission: the particles' own process, each neutrino's number kept.


@pytest.mark.parametrize("n", [2, 3])
def test_reemission_field_matches_numpy_loop(n):
    """The mean field with `Reemission` (groups of both species, matter, OILE's collision term
    or not) equals the field without it plus the NumPy Lindblad term, to 1e-12, and keeps each
    state's trace (its states stay `(K, D)`)."""
    rng = np.random.default_rng(11)
    K = 4
    rate, feq = rng.random((K, n)) + 0.1, rng.random((K, n)) + 0.1
    if n == 2:
        B, L = np.asarray(oj.mixing_vector(0.3)), None
    else:
        B, L = np.asarray(oj.pmns_vacuum("normal", "flavour")), None
    P = random_states(rng, K, n)[:, 1:] / 2
    anti = np.array([False, True, False, True])
    for collision in ("none", "stochastic"):
        fields = [
            oj.GroupField(
                np.full(K, 0.25),
                [0.2, 0.3, 0.4, 0.5],
                oj.System(0.1, mu=1.3, B=B, matter=0.2, L=L, opacities=ops),
                collision=collision,
                antineutrino=anti,
            )  # fmt: skip
            for ops in (None, oj.Reemission(rate, feq))
        ]
        assert fields[1].shape == (K, n * n - 1)
        without, with_ = (np.asarray(f(0.0, jnp.asarray(P))) for f in fields)
        expected = without + numpy_reemission(P, n=n, rate=rate, feq=feq)
        np.testing.assert_allclose(with_, expected, rtol=0, atol=1e-12)


def test_reemission_in_the_gas_is_the_closed_form():
    """A gas of identical neutrinos (one group, `B` along the flavour axis: every encounter
    leaves them as they are) follows the one-neutrino Lindblad equation exactly, whatever the
    step: the electron occupation relaxes to `f_e / (f_e + f_x)` at
    `Gamma_e sigma_x + Gamma_x sigma_e`, the coherence decays at `(Gamma_e + Gamma_x) / 2` and
    turns at `omega`."""
    Gamma, feq = np.array([1.2, 0.3]), np.array([0.6, 0.2])
    omega = 0.7
    system = oj.System(0.2, mu=1.0, B=oj.mixing_vector(0.0), opacities=oj.Reemission(Gamma, feq))
    P0 = np.array([0.6, 0.0, 0.8])
    gas = oj.Gas((16,), jnp.asarray([omega]), jnp.asarray(P0[None]))
    sampling = oj.Sampling(jax.random.key(0), n_steps=40, n_realizations=1, dtype=jnp.float64)
    sol = oj.simulate_gas(gas, system, oj.Stochastic(dt=0.05), sampling,
                          saveat=oj.SaveAt(every=10))  # fmt: skip
    P = np.asarray(sol.group_mean)[0, :, 0]
    t = np.asarray(sol.ts)
    sigma = Gamma * feq / np.sum(Gamma * feq)
    k = Gamma[0] * sigma[1] + Gamma[1] * sigma[0]
    p_star = feq[0] / feq.sum()
    p_e = p_star + ((1 + P0[2]) / 2 - p_star) * np.exp(-k * t)
    np.testing.assert_allclose(P[:, 2], 2 * p_e - 1, rtol=0, atol=1e-12)
    transverse = P[:, 0] + 1j * P[:, 1]
    decay = 0.6 * np.exp(-Gamma.mean() * t)
    np.testing.assert_allclose(np.abs(transverse), decay, rtol=1e-12)
    # B = (0, 0, -1): the isospin turns by omega B x P, clockwise about z.
    np.testing.assert_allclose(transverse / np.abs(transverse), np.exp(-1j * omega * t),
                               atol=1e-12)  # fmt: skip


def test_reemission_in_a_three_flavour_gas():
    """Three flavours: a gas of identical neutrinos (one group, a flavour-diagonal vacuum, a
    superposition of e and mu) follows its group's mean field with `Reemission` (the
    encounters of identical states change nothing) to 1e-9, and every state stays physical."""
    lam = gell_mann(3)
    B = np.real(np.einsum("ij,aji->a", np.diag([0.0, 0.03, 1.0]), lam))
    ops = oj.Reemission([1.5, 0.5, 0.2], [0.6, 0.3, 0.1])
    system = oj.System(0.2, mu=1.0, B=B, opacities=ops)
    psi = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    P0 = components(np.outer(psi, psi.conj()), 3)[1:]
    gas = oj.Gas((12,), jnp.asarray([0.7]), jnp.asarray(P0[None]))
    sampling = oj.Sampling(jax.random.key(0), n_steps=40, n_realizations=1, dtype=jnp.float64)
    sol = oj.simulate_gas(gas, system, oj.Stochastic(dt=0.05), sampling,
                          saveat=oj.SaveAt(every=10))  # fmt: skip
    field = oj.GroupField([1.0], [0.7], system)
    mf = oj.solve_meanfield(field, jnp.asarray(P0[None]), sol.ts, rtol=1e-12, atol=1e-14).P
    np.testing.assert_allclose(np.asarray(sol.group_mean)[0], np.asarray(mf), atol=1e-9)
    for P in np.asarray(sol.group_mean)[0, :, 0]:
        rho = matrices(np.concatenate([[1.0], P])[None], 3)[0]
        assert np.linalg.eigvalsh(rho).min() > -1e-12


@pytest.mark.long  # about 10 s: make test-long, in CI (the default suite's 10 minutes)
def test_reemission_gas_follows_the_mean_field_with_its_collision_term():
    """At gamma = 0.05 the gas (neutrino and antineutrino groups relaxing at different rates
    toward different flavours) follows the mean field with the same `Reemission` and OILE's
    collision term (first order in gamma) within 5 standard errors of its 8 realizations' mean
    (fixed key),
    while the pure mean field misses it by many standard errors: the gas's departure from
    `gamma -> 0` is the predicted O(gamma) term."""
    ops = oj.Reemission([[1.0, 0.2], [0.4, 0.1], [0.6, 0.1]], [[0.8, 0.2], [0.5, 0.5], [0.3, 0.7]])
    system = oj.System(gamma=0.05, mu=1.0, B=oj.mixing_vector(0.1), opacities=ops)
    P0 = jnp.asarray([[0.0, 0, 1], [0, 0, -1.0], [0, 0, 1.0]])  # nu_e, nu_x, nubar_e
    anti = np.array([False, False, True])
    omegas = jnp.array([0.1, 0.2, 0.15])
    gas = oj.Gas((200, 200, 100), omegas, P0, antineutrino=anti)
    R = 8
    sampling = oj.Sampling(jax.random.key(1), n_steps=200, n_realizations=R, dtype=jnp.float64)
    sol = oj.simulate_gas(gas, system, oj.Stochastic(dt=0.01), sampling,
                          saveat=oj.SaveAt(every=50))  # fmt: skip
    means = np.asarray(sol.group_mean)
    mean, error = means.mean(0), means.std(0, ddof=1) / np.sqrt(R)
    ts = jnp.asarray(sol.ts)
    mf = {}
    for collision in ("none", "stochastic"):
        field = oj.GroupField(jnp.array([0.4, 0.4, 0.2]), omegas, system, collision=collision,
                              n=500, antineutrino=anti)  # fmt: skip
        mf[collision] = np.asarray(oj.solve_meanfield(field, P0, ts, rtol=1e-10).P)
    late = slice(1, None)
    deviation = np.abs(mean - mf["stochastic"])[late] / error[late]
    assert deviation.max() < 5, deviation.max()
    assert (np.abs(mean - mf["none"])[late] / error[late]).max() > 20


def test_reemission_scattering_field_matches_numpy_loop():
    """`Reemission(scattering=s)` in the mean field: the field without scattering plus
    `s (sum_h w_h P_h / W - P_g)` over the beams of one species and frequency, by a NumPy loop
    (beams of unequal weights, both species, a class of one beam), to 1e-12; each state keeps
    its trace (the term moves Bloch vectors only)."""
    rng = np.random.default_rng(5)
    K = 5
    rate, feq = rng.random((K, 2)) + 0.1, rng.random((K, 2)) + 0.1
    omegas = np.array([0.2, 0.3, 0.2, 0.3, 0.5])
    anti = np.array([False, True, False, True, False])
    s = np.array([0.7, 0.4, 0.7, 0.4, 0.9])  # equal within each class
    w = np.array([0.1, 0.3, 0.25, 0.15, 0.2])
    directions = rng.normal(size=(K, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    P = random_states(rng, K, 2)[:, 1:] / 2
    fields = [
        oj.GroupField(
            w,
            omegas,
            oj.System(
                0.1,
                mu=1.3,
                B=oj.mixing_vector(0.3),
                angles=oj.Beams(jnp.asarray(directions)),
                opacities=oj.Reemission(rate, feq, scattering=x),
            ),
            antineutrino=anti,
        )  # fmt: skip
        for x in (None, s)
    ]
    without, with_ = (np.asarray(f(0.0, jnp.asarray(P))) for f in fields)
    expected = without.copy()
    for g in range(K):
        same = (omegas == omegas[g]) & (anti == anti[g])
        mean = (w[same, None] * P[same]).sum(0) / w[same].sum()
        expected[g] += s[g] * (mean - P[g])
    np.testing.assert_allclose(with_, expected, rtol=0, atol=1e-12)


def test_reemission_scattering_in_the_gas_is_the_closed_form():
    """Two beams of one species and frequency (150 nu_e and 50 nu_x) and a beam of another
    frequency (200 nu_e, which they may not scatter into), all along z (encounters change
    nothing), exchange directions at the rate `s`: each group's mean relaxes to its class's mean
    as `exp(-s t)` (exact in expectation, whatever the step; the pairs that can exchange are
    half of a neutrino's), within 5 binomial standard errors of 8 realizations (fixed key); the
    third group stays as it is; each class keeps its states (the electron excess exactly)."""
    s, R, counts = 0.5, 8, (150, 50, 200)
    ops = oj.Reemission(jnp.zeros((3, 2)), jnp.ones((3, 2)), scattering=s)
    beams = oj.Beams(jnp.array([[0.0, 0.0, 1.0]] * 3))
    system = oj.System(gamma=0.01, mu=1.0, B=oj.mixing_vector(0.0), angles=beams,
                       opacities=ops)  # fmt: skip
    P0 = jnp.array([[0, 0, 1.0], [0, 0, -1.0], [0, 0, 1.0]])
    gas = oj.Gas(counts, jnp.array([0.1, 0.1, 0.3]), P0)
    sampling = oj.Sampling(jax.random.key(0), n_steps=400, n_realizations=R, dtype=jnp.float64)
    sol = oj.simulate_gas(gas, system, oj.Stochastic(dt=0.005), sampling,
                          saveat=oj.SaveAt(every=50))  # fmt: skip
    ts, z = np.asarray(sol.ts), np.asarray(sol.group_mean)[..., 2]
    mean = (counts[0] - counts[1]) / (counts[0] + counts[1])
    for g, start in enumerate((1.0, -1.0)):
        expected = mean + (start - mean) * np.exp(-s * ts)
        bound = np.sqrt((1 - expected**2) / (counts[g] * R))[1:]
        deviation = np.abs(z[:, :, g].mean(0) - expected)[1:]
        assert np.all(deviation < 5 * bound), deviation / bound
        assert abs(expected[-1] - start) > 0.3  # the groups did mix
    np.testing.assert_array_equal(z[:, :, 2], 1.0)
    np.testing.assert_array_equal(np.asarray(sol.total)[..., 2], 300.0)


def _scattering_gas_system(scattering):
    ops = oj.Reemission([[1.0, 0.2], [0.4, 0.1], [0.6, 0.1]], [[0.8, 0.2], [0.5, 0.5], [0.3, 0.7]],
                        scattering=scattering)  # fmt: skip
    beams = oj.Beams(jnp.array([[0.0, 0.0, 1.0], [0.0, 0.6, -0.8], [1.0, 0.0, 0.0]]))
    return oj.System(gamma=0.05, mu=1.0, B=oj.mixing_vector(0.1), angles=beams, opacities=ops)


@pytest.mark.long  # 8 realizations of 200 steps and three mean fields, about 15 s
def test_reemission_scattering_gas_follows_the_mean_field():
    """At gamma = 0.05, two beams of nu (of other directions and flavours) scattering into each
    other at 0.8 and an antineutrino beam, with `Reemission`: the gas follows the mean field
    with the same scattering and OILE's collision term within 5 standard errors of its 8
    realizations' mean (fixed key); the mean field without scattering misses it by more than
    20."""
    P0 = jnp.asarray([[0.0, 0, 1], [0.6, 0, -0.8], [0, 0, 1.0]])
    anti = np.array([False, False, True])
    omegas = jnp.array([0.1, 0.1, 0.15])
    gas = oj.Gas((200, 200, 100), omegas, P0, antineutrino=anti)
    R = 8
    sampling = oj.Sampling(jax.random.key(1), n_steps=200, n_realizations=R, dtype=jnp.float64)
    system = _scattering_gas_system(jnp.array([0.8, 0.8, 0.0]))
    sol = oj.simulate_gas(gas, system, oj.Stochastic(dt=0.01), sampling,
                          saveat=oj.SaveAt(every=50))  # fmt: skip
    means = np.asarray(sol.group_mean)
    mean, error = means.mean(0)[1:], means.std(0, ddof=1)[1:] / np.sqrt(R)
    ts = jnp.asarray(sol.ts)
    mf = {}
    for name, scattering in (("with", jnp.array([0.8, 0.8, 0.0])), ("without", None)):
        field = oj.GroupField(jnp.array([0.4, 0.4, 0.2]), omegas,
                              _scattering_gas_system(scattering), collision="stochastic", n=500,
                              antineutrino=anti)  # fmt: skip
        mf[name] = np.asarray(oj.solve_meanfield(field, P0, ts, rtol=1e-10).P)[1:]
    assert (np.abs(mean - mf["with"]) / error).max() < 5
    assert (np.abs(mean - mf["without"]) / error).max() > 20


def test_reemission_scattering_refused_where_it_cannot_hold():
    """The gas refuses scattering it cannot give or that would do nothing, each error naming
    the option: rates unequal among the classes they mix (mean field too), a rate faster than
    the pairs can give (with the largest step that can), fresh angles, beams of which no two
    share a species and frequency, shards, and a gradient with respect to the rate."""
    P0 = jnp.asarray([[0.0, 0, 1], [0.6, 0, -0.8], [0, 0, 1.0]])
    anti = np.array([False, False, True])
    gas = oj.Gas((20, 20, 10), jnp.array([0.1, 0.1, 0.15]), P0, antineutrino=anti)
    sampling = oj.Sampling(jax.random.key(1), n_steps=4, n_realizations=1, dtype=jnp.float64)
    step = oj.Stochastic(dt=0.01)
    run = lambda system, schedule=step: oj.simulate_gas(gas, system, schedule, sampling)
    unequal = _scattering_gas_system(jnp.array([0.8, 0.5, 0.0]))
    with pytest.raises(ValueError, match="equal among the classes"):
        run(unequal)
    with pytest.raises(ValueError, match="equal among the classes"):
        oj.GroupField(jnp.array([0.4, 0.4, 0.2]), gas.omegas, unequal, antineutrino=anti)
    # 40 of the 50 neutrinos share a class: 1 - exp(-s dt) may be at most 40/49.
    with pytest.raises(ValueError, match=r"steps of at most 0\.0?169"):
        run(_scattering_gas_system(jnp.array([100.0, 100.0, 0.0])), oj.Stochastic(dt=0.05))
    fresh = eqx.tree_at(lambda s: s.angles, _scattering_gas_system(0.8), oj.Isotropic())
    with pytest.raises(ValueError, match="afresh"):
        run(fresh)
    lonely = oj.Gas((20, 20, 10), jnp.array([0.1, 0.2, 0.15]), P0, antineutrino=anti)
    with pytest.raises(ValueError, match="would do nothing"):
        oj.simulate_gas(lonely, _scattering_gas_system(0.8), oj.Stochastic(dt=0.01), sampling)
    even = oj.Gas((20, 20, 8), jnp.array([0.1, 0.1, 0.15]), P0, antineutrino=anti)
    with pytest.raises(ValueError, match="unsharded"):
        system = _scattering_gas_system(jnp.array([0.8, 0.8, 0.0]))
        oj.simulate_gas(even, system, step, sampling, sharding=oj.Sharding(shards=2))

    def final(rate):
        system = _scattering_gas_system(jnp.array([rate, rate, 0.0]))
        sol = oj.evolve_gas(gas, system, oj.Stochastic(dt=0.01), sampling)
        return jnp.sum(sol.final_state)

    with pytest.raises(ValueError, match="scattering"):
        jax.grad(final)(0.8)


def _cfi_gas_field(collision="none", gamma=0.002):
    """A gas of nu_e (55%) and nubar_e (45%) whose electron flavours relax at 1.0 and 0.1
    (`Reemission`, x not absorbed): collisionally unstable. Its mean field (n = 400) and its
    flavour state."""
    ops = oj.Reemission([[1.0, 0.0], [0.1, 0.0]], [[1.0, 0.0], [1.0, 0.0]])
    system = oj.System(gamma=gamma, mu=1.0, B=oj.mixing_vector(0.0), opacities=ops)
    field = oj.GroupField(
        jnp.array([0.55, 0.45]),
        jnp.array([0.01, 0.01]),
        system,
        collision=collision,
        n=400,
        antineutrino=np.array([False, True]),
    )
    return field, jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # fmt: skip


def _seeded(eps=1e-6):
    return jnp.array([[eps, 0, np.sqrt(1 - eps**2)]] * 2)


def _growth(ts, P, window):
    """The slope of `log |P_perp|` of the neutrino group over `window`."""
    perp = np.hypot(P[..., 0, 0], P[..., 0, 1])
    return np.polyfit(ts[window], np.log(perp[..., window].T), 1)[0]


def test_reemission_collisional_instability():
    """With `Reemission` the collisional instability is Johns's: its linearization about the
    flavour state (stationary: x is not absorbed, every diagonal state is) has the transverse
    sector of `Opacities`', and the mean field's coherence grows at `linear_stability`'s rate
    (1e-3). At Emu's parameters the two kinds of opacities give the same growth rate."""
    field, state = _cfi_gas_field()
    rate = float(oj.linear_stability(field, state).growth_rate)
    assert rate > 0.05
    ts = np.linspace(0.0, 60.0, 31)
    P = np.asarray(oj.solve_meanfield(field, _seeded(), jnp.asarray(ts), rtol=1e-10).P)
    np.testing.assert_allclose(_growth(ts, P, (ts > 15) & (ts < 50)), rate, rtol=1e-3)
    # Emu's test with Reemission: groups weighted by their numbers, mu by the total.
    qke, qke_state, T = emu_field(1e4)
    number = qke_state[:, 0]
    rate_qke = float(oj.linear_stability(qke, qke_state).growth_rate)
    ops = oj.Reemission(qke.system.opacities.rate, qke.system.opacities.equilibrium)
    system = oj.System(0.1, mu=number.sum(), B=oj.mixing_vector(0.0), opacities=ops)
    particles = oj.GroupField(number / number.sum(), qke.system.omegas, system,
                              antineutrino=[False, True])  # fmt: skip
    bloch = qke_state[:, 1:] / number[:, None]
    np.testing.assert_allclose(
        float(oj.linear_stability(particles, bloch).growth_rate), rate_qke, rtol=1e-9
    )


@pytest.mark.long  # 30 000 gas steps, about 10 s: make test-long, in CI
def test_reemission_gas_collisional_growth():
    """The OILE gas at gamma = 0.002 (4 realizations of 400 neutrinos, fixed key) grows at the
    rate of the mean field with its O(gamma) collision term, within 5 standard errors; OILE's
    decoherence of the nu_e-nubar_e pairs slows the instability below the gamma -> 0 rate of
    `linear_stability` by many standard errors (0.079 against 0.093)."""
    field, state = _cfi_gas_field()
    with_collision, _ = _cfi_gas_field("stochastic")
    anti = np.array([False, True])
    gas = oj.Gas((220, 180), field.system.omegas, _seeded(), antineutrino=anti)
    R = 4
    sampling = oj.Sampling(jax.random.key(2), n_steps=30000, n_realizations=R, dtype=jnp.float64)
    sol = oj.simulate_gas(gas, field.system, oj.Stochastic(dt=0.002), sampling,
                          saveat=oj.SaveAt(every=1000))  # fmt: skip
    ts = np.asarray(sol.ts)
    window = (ts > 15) & (ts < 50)
    slopes = _growth(ts, np.asarray(sol.group_mean), window)
    mean, error = slopes.mean(), slopes.std(ddof=1) / np.sqrt(R)
    predicted = _growth(
        ts, np.asarray(oj.solve_meanfield(with_collision, _seeded(), jnp.asarray(ts)).P), window
    )
    assert abs(mean - predicted) < 5 * error, (mean, predicted, error)
    limit = float(oj.linear_stability(field, state).growth_rate)
    assert abs(mean - limit) > 20 * error


# ---------------------------------------------------------------------------------------------
# Refusals.


def test_opacities_refused_where_they_would_do_nothing_or_be_wrong():
    ops = oj.Opacities([1.0, 0.5], [0.5, 0.5])
    system = oj.System(0.1, mu=1.0, B=oj.mixing_vector(0.1), opacities=ops)
    gas = oj.Gas((4, 4), jnp.asarray([0.1, 0.2]), jnp.asarray([[0.0, 0, 1], [0, 0, -1.0]]))
    with pytest.raises(ValueError, match="give Reemission"):
        oj.simulate_gas(gas, system, oj.Stochastic(dt=0.05),
                        oj.Sampling(jax.random.key(1), n_steps=2))  # fmt: skip
    with pytest.raises(ValueError, match="Reemission keeps each neutrino's number"):
        oj.GroupField([1.0], [0.3], system, collision="stochastic")
    with pytest.raises(ValueError, match="Reemission keeps it"):
        oj.GroupField([1.0], [0.3], system, n=10)
    with pytest.raises(ValueError, match="fractions must be >= 0"):
        oj.GroupField([1.0, -1.0], [0.3, -0.3], system)
    with pytest.raises(ValueError, match="ForegroundField"):
        oj.ForegroundField(oj.nu_e(), 0.3, system)
    scatter = oj.Opacities(0.0, 0.0, scattering=1.0)
    with pytest.raises(ValueError, match="gives the groups none"):
        oj.GroupField([0.5, 0.5], [0.3, 0.3], oj.System(0.1, opacities=scatter))
    lonely = oj.System(0.1, angles=oj.Axisymmetric([0.5, -0.5]), opacities=scatter)
    with pytest.raises(ValueError, match="would do nothing"):
        oj.GroupField([0.5, 0.5], [0.3, 0.4], lonely)
    field = oj.GroupField([1.0], [0.3], system)
    with pytest.raises(ValueError, match=r"shape \(1, 4\)"):
        oj.solve_meanfield(field, jnp.array([[0.0, 0.0, 1.0]]), jnp.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="tangent=True"):
        oj.linear_stability(field, jnp.array([[1.0, 0.0, 0.0, 0.0]]), tangent=True)


def test_opacities_options_checked_at_bind():
    bad = [
        (oj.Opacities([1.0, 2.0, 3.0], 0.5), "opacities rate must be one number"),
        (oj.Opacities(-1.0, 0.5), "opacities rate must be >= 0"),
        (oj.Opacities(1.0, jnp.nan), "opacities equilibrium contains NaN"),
        (oj.Opacities(1.0, 0.5, scattering=[1.0, 2.0, 3.0]), "opacities scattering must be"),
        (oj.Opacities(1.0, 0.5, kernel=np.ones((3, 3))), r"kernel must have shape \(2, 2\)"),
    ]
    for ops, message in bad:
        with pytest.raises(ValueError, match=message):
            oj.System(0.1, opacities=ops).bind(jnp.array([0.1, 0.2]), dtype=jnp.float64)
    with pytest.raises(ValueError, match="not both"):
        oj.Opacities(1.0, 0.5, scattering=1.0, kernel=np.ones((2, 2)))
    # A scale that turns negative during the solve (it multiplies the rates) is refused.
    falling = oj.Samples(jnp.array([0.0, 2.0]), jnp.array([1.0, -1.0]))
    system = oj.System(
        0.1, B=oj.mixing_vector(0.1), opacities=oj.Opacities(1.0, 0.5, scale=falling)
    )
    field = oj.GroupField([1.0], [0.3], system)
    with pytest.raises(ValueError, match="opacities scale must be >= 0"):
        oj.solve_meanfield(field, jnp.array([[1.0, 0.0, 0.0, 1.0]]), jnp.linspace(0, 2, 5))
    with pytest.raises(ValueError, match="opacities must be Opacities"):
        oj.System(0.1, opacities={"rate": 1.0})


@pytest.mark.long  # a reverse-mode compile, about 10 s: make test-long, in CI
def test_rates_traced_vmap_and_gradient():
    """The rates are traced leaves: a vmap over them equals each solve, and the gradient of a
    final trace with respect to a rate equals the closed form's."""
    ts = jnp.linspace(0.0, 1.0, 3)
    Q0 = jnp.array([[1.0, 0.0, 0.0, 1.0]])

    def final_trace(g):
        ops = oj.Opacities(jnp.stack([g, 0.0]), jnp.array([0.25, 0.0]))
        system = oj.System(0.1, mu=1.0, B=oj.mixing_vector(0.0), opacities=ops)
        field = oj.GroupField(jnp.ones(1), jnp.array([0.3]), system)
        return oj.solve_meanfield(field, Q0, ts, rtol=1e-11, atol=1e-13).P[-1, 0, 0]

    gs = jnp.array([0.5, 1.0, 2.0])
    batched = jax.vmap(final_trace)(gs)
    closed = 0.25 + 0.75 * np.exp(-np.asarray(gs))  # f_e relaxes, f_x = 0 stays
    np.testing.assert_allclose(batched, closed, rtol=1e-9)
    np.testing.assert_allclose(jax.grad(final_trace)(1.0), -0.75 * np.exp(-1.0), rtol=1e-7)


# ---------------------------------------------------------------------------------------------
# Run files.

REEMISSION_RUN = """
model = "{model}"
seed = 1
precision = "float64"

[physics]
gamma = 0.05
basis = "flavour"
theta = 0.1
opacities = "reemission"

[run]
t_max = 2.0
n_saves = 5

[gas]
counts = [40, 40]
omegas = [0.1, 0.2]
P0 = ["e", "x"]
rates = [[1.0, 0.2], [0.4, 0.1]]
equilibria = [[0.8, 0.2], [0.5, 0.5]]
"""


@pytest.mark.long  # two `oile run`s, about 10 s: make test-long, in CI
def test_reemission_run_files(tmp_path):
    """`physics.opacities = "reemission"` in a run file: the mean field is the library's
    `GroupField` with `Reemission` (to 1e-9), the gas runs with it, and its tables are checked
    (one row per group, one number per flavour, used only with the option)."""
    from oile_jax._app import cli, config

    out = {}
    for model in ("meanfield", "gas"):
        path = tmp_path / f"{model}.toml"
        text = REEMISSION_RUN.format(model=model)
        if model == "gas":
            text = text.replace("n_saves = 5", "n_saves = 5\nn_realizations = 2")
        path.write_text(text)
        out[model] = tmp_path / f"{model}.h5"
        assert cli.main(["run", str(path), "--out", str(out[model])]) == 0
    data, _ = oj.read_h5(out["meanfield"])
    ops = oj.Reemission([[1.0, 0.2], [0.4, 0.1]], [[0.8, 0.2], [0.5, 0.5]])
    system = oj.System(0.05, B=oj.mixing_vector(0.1), opacities=ops)
    field = oj.GroupField(jnp.array([0.5, 0.5]), jnp.array([0.1, 0.2]), system, n=80)
    P0 = jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    expected = oj.solve_meanfield(field, P0, jnp.linspace(0.0, 2.0, 5)).P
    np.testing.assert_allclose(data["group_mean"], expected, rtol=0, atol=1e-9)
    gas, _ = oj.read_h5(out["gas"])
    assert np.all(np.isfinite(gas["group_mean"]))
    # With scattering between two beams of one frequency: the gas of the library with the same
    # options, to 1e-9.
    text = REEMISSION_RUN.format(model="gas").replace(
        "n_saves = 5", "n_saves = 5\nn_realizations = 2"
    )
    text = text.replace('opacities = "reemission"', 'opacities = "reemission"\nangles = "beams"')
    text = text.replace("omegas = [0.1, 0.2]", "omegas = [0.1, 0.1]")
    text += "directions = [[0, 0, 1], [0, 0, -1]]\nscattering = [2.0, 2.0]\n"
    path = tmp_path / "scattering.toml"
    path.write_text(text)
    assert cli.main(["run", str(path), "--out", str(tmp_path / "scattering.h5")]) == 0
    scattered, _ = oj.read_h5(tmp_path / "scattering.h5")
    ops = oj.Reemission([[1.0, 0.2], [0.4, 0.1]], [[0.8, 0.2], [0.5, 0.5]], scattering=2.0)
    beams = oj.Beams(jnp.array([[0.0, 0, 1], [0, 0, -1]]))
    system = oj.System(0.05, B=oj.mixing_vector(0.1), angles=beams, opacities=ops)
    library_gas = oj.Gas((40, 40), jnp.array([0.1, 0.1]), P0)
    sampling = oj.Sampling(jax.random.key(1), t_max=2.0, n_realizations=2, dtype=jnp.float64)
    sol = oj.simulate_gas(library_gas, system, oj.Stochastic(dt=0.05), sampling,
                          saveat=oj.SaveAt(every=10))  # fmt: skip
    np.testing.assert_allclose(scattered["group_mean"], np.asarray(sol.group_mean), atol=1e-9)
    # The relaxation shows: group 0 (nu_e) toward 0.8 e : 0.2 x, P_z 0.6 at equilibrium.
    assert abs(float(np.mean(gas["group_mean"][:, -1, 0, 2])) - 0.6) < 0.3
    bad = [
        ({"opacities": "none"}, "gas.rates"),
        ({"rates": "[[1.0, 0.2]]"}, "one row per group"),
        ({"rates": "[[1.0], [0.4]]"}, "2 numbers per row"),
        ({"equilibria": "[[0.0, 0.0], [0.5, 0.5]]"}, "emits no flavour"),
        ({"rates": "[[1.0, -0.2], [0.4, 0.1]]"}, ">= 0"),
    ]
    for changes, message in bad:
        text = REEMISSION_RUN.format(model="gas")
        for key, value in changes.items():
            lines = text.splitlines()
            text = "\n".join(
                f"{key} = {value!s}" if line.startswith(f"{key} = ") else line for line in lines
            ).replace("opacities = none", 'opacities = "none"')
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(config.ConfigError, match=message):
            config.resolve(config.load(str(path))[0])


KINETIC_RUN = """
model = "meanfield"
precision = "float64"

[physics]
basis = "flavour"
theta = 0.1
opacities = "kinetic"
angles = "{angles}"

[run]
t_max = 2.0
n_saves = 5

[gas]
counts = [4, 4, 2]
omegas = [0.1, 0.1, 0.2]
P0 = ["e", [0.3, 0.0, -0.6], "e"]
antineutrino = [false, false, true]
{directions}
rates = [[1.0, 0.2], [0.4, 0.1], [0.3, 0.0]]
equilibria = [[0.8, 0.2], [0.5, 0.5], [0.9, 0.1]]
numbers = [1.0, 2.0, 0.5]
scattering = [0.3, 0.5, 0.0]

[meanfield]
rtol = 1e-10
atol = 1e-12
"""
KINETIC_DIRECTIONS = "directions = [[0, 0, 1], [0, 0.6, -0.8], [1, 0, 0]]"


def _kinetic_outputs_check(data, Q, members, fractions):
    """The run file's outputs of the kinetic mean field's states `Q` `(S, K, 1 + D)` (one class
    per member: `members` `(K,)` the group of each), by NumPy: each group's mean number, Bloch
    vector and occupations, and the number-weighted entropy of `rho = f / N`."""
    Q = np.asarray(Q)
    G = len(fractions)
    for g in range(G):
        mine = Q[:, members == g]
        N = mine[..., 0].mean(1)
        np.testing.assert_allclose(data["numbers"][:, g], N, rtol=0, atol=1e-9)
        np.testing.assert_allclose(data["group_mean"][:, g], mine[..., 1:].mean(1), atol=1e-9)
        occ = np.stack([N / 2 + mine[..., 3].mean(1) / 2, N / 2 - mine[..., 3].mean(1) / 2], -1)
        np.testing.assert_allclose(data["occupations"][:, g], occ, atol=1e-9)
        r = np.linalg.norm(mine[..., 1:], axis=-1) / mine[..., 0]
        lam = np.clip(np.stack([(1 + r) / 2, (1 - r) / 2]), 1e-300, 1)
        S = -(lam * np.log(lam)).sum(0)
        expected = (mine[..., 0] * S).sum(1) / mine[..., 0].sum(1)
        np.testing.assert_allclose(data["group_entropy"][:, g], expected, atol=1e-9)
    weights = np.asarray(fractions) * data["numbers"]
    np.testing.assert_allclose(
        data["entropy"], (data["group_entropy"] * weights).sum(1) / weights.sum(1), atol=1e-12
    )


@pytest.mark.long  # two `oile run`s, about 20 s: make test-long, in CI
def test_kinetic_run_files(tmp_path):
    """`physics.opacities = "kinetic"` in a run file: beams with scattering, an antineutrino
    group and initial numbers are the library's `GroupField` with `Opacities` (to 1e-9); fixed
    velocities are its `MultiAngleField` over the written velocities; the numbers, Bloch
    vectors, occupations and entropies written are those of the states (NumPy)."""
    from oile_jax._app import cli

    rates = jnp.array([[1.0, 0.2], [0.4, 0.1], [0.3, 0.0]])
    feq = jnp.array([[0.8, 0.2], [0.5, 0.5], [0.9, 0.1]])
    N0 = np.array([1.0, 2.0, 0.5])
    rho = np.array([[0.0, 0.0, 1.0], [0.3, 0.0, -0.6], [0.0, 0.0, 1.0]])
    Q0 = np.concatenate([N0[:, None], N0[:, None] * rho], 1)
    ts = jnp.linspace(0.0, 2.0, 5)
    anti = [False, False, True]
    data = {}
    for angles, directions in (("beams", KINETIC_DIRECTIONS), ("fixed-velocities", "")):
        path = tmp_path / f"{angles}.toml"
        path.write_text(KINETIC_RUN.format(angles=angles, directions=directions))
        out = tmp_path / f"{angles}.h5"
        assert cli.main(["run", str(path), "--out", str(out)]) == 0
        data[angles], _ = oj.read_h5(out)
    ops = oj.Opacities(rates, feq, scattering=jnp.array([0.3, 0.5, 0.0]))
    directions = jnp.array([[0, 0, 1], [0, 0.6, -0.8], [1, 0, 0]], float)
    system = oj.System(1.0, B=oj.mixing_vector(0.1), angles=oj.Beams(directions), opacities=ops)
    fractions = np.array([0.4, 0.4, 0.2])
    field = oj.GroupField(fractions, jnp.array([0.1, 0.1, 0.2]), system, antineutrino=anti)
    Q = oj.solve_meanfield(field, jnp.asarray(Q0), ts, rtol=1e-10, atol=1e-12).P
    beams = data["beams"]
    _kinetic_outputs_check(beams, np.asarray(Q), np.arange(3), fractions)
    assert np.ptp(beams["numbers"][:, 0]) > 0.2  # the numbers do change
    # `oile plot` draws each group's rho = f / N: its P_z within [-1, 1] (f's reach 1.3).
    from oile_jax._output.plot import plot_run

    _, attrs = oj.read_h5(tmp_path / "beams.h5")
    figure = plot_run(beams, attrs)
    drawn = np.concatenate([line.get_ydata() for line in figure.axes[0].get_lines()])
    np.testing.assert_allclose(
        np.sort(drawn), np.sort((beams["group_mean"][..., 2] / beams["numbers"]).T.ravel())
    )
    assert np.abs(beams["group_mean"][..., 2]).max() > 1.05
    # Fixed velocities: every neutrino a class, the rows of its group.
    fixed = data["fixed-velocities"]
    members = np.repeat(np.arange(3), [4, 4, 2])
    ops = oj.Opacities(rates[members], feq[members], scattering=jnp.array([0.3, 0.5, 0.0])[members])
    system = oj.System(1.0, B=oj.mixing_vector(0.1), opacities=ops)
    omegas = jnp.array([0.1, 0.1, 0.2])[members]
    field = oj.MultiAngleField(omegas, jnp.asarray(fixed["velocities"]), system,
                               antineutrino=np.asarray(anti)[members])  # fmt: skip
    Q = oj.solve_meanfield(field, jnp.asarray(Q0[members]), ts, rtol=1e-10, atol=1e-12).P
    _kinetic_outputs_check(fixed, np.asarray(Q), members, fractions)
    assert np.max(np.abs(fixed["numbers"] - beams["numbers"])) > 1e-3  # other angles, other run


@pytest.mark.long  # about 15 s: make test-long, in CI
def test_emu_collisional_instability_preset(tmp_path):
    """`oile run emu-collisional-instability` (the kinetic opacities in a run file): the
    coherence grows at the NumPy linearization's rate of Emu's test, within 1e-3; the numbers
    stay at their equilibrium."""
    from oile_jax._app import cli

    out = tmp_path / "emu.h5"
    assert cli.main(["run", "emu-collisional-instability", "--out", str(out)]) == 0
    data, _ = oj.read_h5(out)
    ts = np.asarray(data["ts"])
    perp = np.hypot(data["group_mean"][:, 0, 0], data["group_mean"][:, 0, 1])
    T = 2 / (MU * NXX)
    rate = exact_rate_numpy(1e4) * T
    window = (ts > 4 / rate) & (perp < 2e-4)
    assert window.sum() > 20
    slope = np.polyfit(ts[window], np.log(perp[window]), 1)[0]
    assert abs(slope / rate - 1) < 1e-3, slope / rate
    np.testing.assert_allclose(data["numbers"], np.broadcast_to([4.0, 3.5], (ts.size, 2)),
                               rtol=1e-8)  # fmt: skip


def test_kinetic_run_file_refusals(tmp_path):
    """The kinetic opacities' keys are checked before a run, each error naming its key."""
    from oile_jax._app import config

    beams = KINETIC_RUN.format(angles="beams", directions=KINETIC_DIRECTIONS)
    bad = [
        (
            REEMISSION_RUN.format(model="gas").replace('"reemission"', '"kinetic"'),
            "physics.opacities",
            "gas's particles",
        ),
        (
            REEMISSION_RUN.format(model="meanfield").replace('"reemission"', '"kinetic"')
            + '\n[meanfield]\ncollision = "stochastic"\n',
            "meanfield.collision",
            "must be 'none'",
        ),
        (
            beams.replace('opacities = "kinetic"', 'opacities = "reemission"'),
            "gas.numbers",
            "'kinetic' only",
        ),
        (
            beams.replace('basis = "flavour"\ntheta = 0.1', 'basis = "mass"').replace(
                'P0 = ["e", [0.3, 0.0, -0.6], "e"]', "P0 = [[0, 0, 1], [0, 0, 1], [0, 0, 1]]"
            ),
            "physics.opacities",
            "flavour basis",
        ),
        (
            beams.replace("numbers = [1.0, 2.0, 0.5]", "numbers = [1.0, 2.0]"),
            "gas.numbers",
            "one number per group",
        ),
        (
            beams.replace("numbers = [1.0, 2.0, 0.5]", "numbers = [1.0, 0.0, 0.5]"),
            "gas.numbers",
            "> 0",
        ),
        (
            beams.replace("scattering = [0.3, 0.5, 0.0]", "scattering = [0.3, -0.5, 0.0]"),
            "gas.scattering",
            ">= 0",
        ),
        (
            KINETIC_RUN.format(angles="isotropic", directions=""),
            "gas.scattering",
            "changes directions",
        ),
        (
            beams.replace("omegas = [0.1, 0.1, 0.2]", "omegas = [0.1, 0.15, 0.2]"),
            "gas.scattering",
            "it would do nothing",
        ),
        (
            beams.replace('opacities = "kinetic"', 'opacities = "reemission"').replace(
                "numbers = [1.0, 2.0, 0.5]\n", ""
            ),
            "gas.scattering",
            "must be equal",
        ),
        (
            REEMISSION_RUN.format(model="meanfield") + "scattering = [0.5, 0.5]\n",
            "gas.scattering",
            "changes directions",
        ),
        (
            REEMISSION_RUN.format(model="gas")
            .replace('"reemission"', '"reemission"\nangles = "beams"')
            .replace("omegas = [0.1, 0.2]", "omegas = [0.1, 0.1]")
            + "directions = [[0, 0, 1], [0, 0, -1]]\nscattering = [0.5, 0.5]\nshards = 2\n",
            "gas.scattering",
            "unsharded",
        ),
    ]
    for text, key, message in bad:
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(config.ConfigError, match=f"{key}.*{message}"):
            config.resolve(config.load(str(path))[0])
    path = tmp_path / "good.toml"
    path.write_text(beams)
    assert config.resolve(config.load(str(path))[0])["physics"]["opacities"] == "kinetic"


@pytest.mark.long  # 30 000 gas steps: make test-long, in CI
def test_collisional_instability_preset(tmp_path):
    """`oile run collisional-instability`: the gas's coherence grows at the rate of the mean
    field with `Reemission` and OILE's collision term (5 standard errors of its 4 realizations),
    as the library's gas does."""
    from oile_jax._app import cli

    out = tmp_path / "cfi.h5"
    assert cli.main(["run", "collisional-instability", "--out", str(out)]) == 0
    data, _ = oj.read_h5(out)
    ts = np.asarray(data["ts"])
    window = (ts > 15) & (ts < 50)
    slopes = _growth(ts, np.asarray(data["group_mean"]), window)
    with_collision, _ = _cfi_gas_field("stochastic")
    P = np.asarray(oj.solve_meanfield(with_collision, _seeded(), jnp.asarray(ts)).P)
    predicted = _growth(ts, P, window)
    error = slopes.std(ddof=1) / np.sqrt(slopes.size)
    assert abs(slopes.mean() - predicted) < 5 * error, (slopes.mean(), predicted, error)
