"""The mean field at scale: weighted axisymmetric modes against an independent NumPy field whose
directions are integrated numerically, signed ELN weights against antineutrino groups, the fused
solvers against diffrax's, the spectral split's swap frequency at 1001 modes against lepton
number, conservation, one compilation per shape, vmap, and gradients against finite
differences."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

import oile_jax as oj
from oile_jax._meanfield.solver import FusedDopri8, FusedTsit5

jax.config.update("jax_enable_x64", True)


def _directions(u, phi):
    """Unit vectors at polar cosines `u` (any shape) and azimuths `phi`."""
    sin = np.sqrt(1 - u**2)
    return np.stack([sin * np.cos(phi), sin * np.sin(phi), np.broadcast_to(u, np.shape(phi))], -1)


def _numpy_axisymmetric_field(P, omegas, weights, u, B, mu, gamma, K=16):
    """`dP_a/dt` of modes on rings `u_a` (neutrinos), the direction grid integrated
    numerically: each ring's partner at `K` azimuths (a uniform grid, exact for the
    trigonometric polynomials of degree < K that `x` and `x^2` are), the mode itself at azimuth
    0. `(1 - v.v')` and its square weight the mean field and the collision term
    `mu gamma sum_b w_b <x^2> (P_b - P_a)`."""
    phi = 2 * np.pi * np.arange(K) / K
    v_self = _directions(u, np.zeros_like(u))  # (A, 3)
    v_partner = _directions(u[:, None], np.broadcast_to(phi, (u.size, K)))  # (A, K, 3)
    x = 1 - np.einsum("ad,bkd->abk", v_self, v_partner)  # (A, B, K)
    W, W2 = x.mean(-1), (x**2).mean(-1)
    dP = np.zeros_like(P)
    for a in range(u.size):
        H = omegas[a] * B + mu * sum(weights[b] * W[a, b] * P[b] for b in range(u.size))
        dP[a] = np.cross(H, P[a])
        for b in range(u.size):
            dP[a] += mu * gamma * weights[b] * W2[a, b] * (P[b] - P[a])
    return dP


@pytest.mark.parametrize("collision", ["none", "stochastic"])
def test_axisymmetric_field_is_the_numerically_integrated_direction_grid(collision):
    """`GroupField` with `Axisymmetric(u)` on a Gauss-Legendre grid of 6 rings times 2 energies
    (`mode_grid`) equals the NumPy field that integrates every ring over its azimuths."""
    rng = np.random.default_rng(3)
    u_grid, w_grid = oj.angle_grid(6)
    assert_allclose(w_grid.sum(), 1.0, rtol=1e-15)
    assert_allclose(w_grid @ u_grid**2, 1 / 3, rtol=1e-14)  # the mean of u^2 over the sphere
    omegas, weights, u = oj.mode_grid([0.5, 1.5], [0.3, 0.7], u_grid, w_grid)
    P = rng.normal(size=(u.size, 3))
    P /= np.linalg.norm(P, axis=-1, keepdims=True) * 1.1
    B = np.array([np.sin(0.2), 0.0, -np.cos(0.2)])
    mu, gamma = 2.5, 0.05
    system = oj.System(gamma=gamma, mu=mu, B=jnp.asarray(B), angles=oj.Axisymmetric(u))
    field = oj.GroupField(jnp.asarray(weights), jnp.asarray(omegas), system, collision)
    expected = _numpy_axisymmetric_field(
        P, omegas, weights, u, B, mu, gamma if collision != "none" else 0.0
    )
    assert_allclose(field(0.0, jnp.asarray(P)), expected, rtol=0, atol=1e-13)


def test_mode_grid_and_angle_grid():
    u, w = oj.angle_grid(4, "uniform")
    assert_allclose(u, [-0.75, -0.25, 0.25, 0.75])
    assert_allclose(w, 0.25)
    omegas, weights, uu = oj.mode_grid([1.0, 2.0], [0.4, 0.6], u, w)
    assert_allclose(omegas, [1.0] * 4 + [2.0] * 4)
    assert_allclose(uu, np.tile(u, 2))
    assert_allclose(weights, np.r_[0.4 * w, 0.6 * w])
    with pytest.raises(ValueError, match="rule"):
        oj.angle_grid(4, "simpson")
    with pytest.raises(ValueError, match="u and angle_weights"):
        oj.mode_grid([1.0], [1.0], u, w[:2])
    with pytest.raises(ValueError, match="polar cosines in"):
        oj.Axisymmetric(jnp.asarray([0.5, 1.5]))


def test_signed_eln_weights_are_antineutrino_groups():
    """NuGas's way of writing antineutrinos (negative weights and frequencies, the mode's state
    `Pbar`) is the same field as antineutrino groups of positive weight."""
    rng = np.random.default_rng(5)
    u, w = oj.angle_grid(5)
    f_nu, f_anti = rng.uniform(0.5, 1.0, 5) * w, rng.uniform(0.5, 1.0, 5) * w
    omegas = rng.uniform(0.1, 1.0, 5)
    P = rng.normal(size=(10, 3)) * 0.5
    B = jnp.asarray(oj.mixing_vector(0.3))
    angles = oj.Axisymmetric(jnp.asarray(np.r_[u, u]))
    system = oj.System(gamma=0.0, mu=3.0, B=B, angles=angles)
    groups = oj.GroupField(
        jnp.asarray(np.r_[f_nu, f_anti]),
        jnp.asarray(np.r_[omegas, omegas]),
        system,
        antineutrino=jnp.asarray([False] * 5 + [True] * 5),
    )
    signed = oj.GroupField(
        jnp.asarray(np.r_[f_nu, -f_anti]), jnp.asarray(np.r_[omegas, -omegas]), system
    )
    assert_allclose(signed(0.0, jnp.asarray(P)), groups(0.0, jnp.asarray(P)), rtol=0, atol=1e-14)


def test_signed_weights_are_refused_where_they_mean_nothing():
    system = oj.System(gamma=0.01, mu=1.0, B=jnp.asarray(oj.mixing_vector(0.1)))
    weights, omegas = jnp.asarray([0.7, -0.3]), jnp.asarray([1.0, 2.0])
    with pytest.raises(ValueError, match="fractions"):
        oj.GroupField(weights, omegas, system, "stochastic")
    with pytest.raises(ValueError, match="fractions"):
        oj.GroupField(weights, omegas, system, n=100)
    oj.GroupField(weights, omegas, system)  # the pure mean field takes them


def _split(G, dtype=jnp.float64):
    tau = 1 / 0.03
    omegas = (np.arange(G) + 0.5) * 2.0 / G
    system = oj.System(gamma=0.0, mu=oj.Exponential(100.0, tau), B=jnp.asarray([0.0, 0.0, 1.0]))
    field = oj.GroupField(jnp.full((G,), 1.0 / G, dtype), jnp.asarray(omegas, dtype), system)
    P0 = jnp.asarray(np.tile([np.sqrt(0.75), 0.0, 0.5], (G, 1)), dtype)
    return field, P0, jnp.asarray(np.linspace(0.0, tau * np.log(1000.0), 5), dtype), omegas


def test_spectral_split_swaps_at_the_lepton_number_frequency():
    """NuGas's spectral split at 1001 modes: `mu` falls from 100 to 0.1, and the spectrum swaps
    where lepton number `D_z = 1/2` puts it: `int_0^w_c (-1/2) + int_w_c^2 (1/2) = D_z`, so
    `w_c = 1 - D_z = 0.5`, located within one mode spacing (2/G); `D_z` and every `|P|` kept."""
    G = 1001
    field, P0, ts, omegas = _split(G)
    solution = oj.solve_meanfield(field, P0, ts)
    P = np.asarray(solution.P)
    D_z = P[:, :, 2].mean(axis=1)
    assert_allclose(D_z, 0.5, rtol=0, atol=1e-7)
    assert_allclose(np.linalg.norm(P, axis=-1), 1.0, rtol=0, atol=1e-7)
    final = P[-1, :, 2]
    assert final[0] < -0.99 and final[-1] > 0.99  # swapped below, kept above
    crossing = np.nonzero(np.diff(np.sign(final)))[0]
    assert crossing.size == 1
    k = crossing[0]
    w_c = omegas[k] - final[k] * (omegas[k + 1] - omegas[k]) / (final[k + 1] - final[k])
    assert abs(w_c - 0.5) < 2.0 / G, w_c


def test_fused_solvers_take_diffrax_steps():
    """`FusedTsit5` is diffrax's `Tsit5` with its stages fused: under the same controller, the
    same steps and the same states to rounding; `FusedDopri8` (through `solve_meanfield`, its
    steps landing on the saves) agrees with both at the tolerance in fewer than half the steps."""
    field, P0, ts, _ = _split(21)

    def solve(solver):
        return diffrax.diffeqsolve(
            diffrax.ODETerm(field.major),
            solver,
            ts[0],
            ts[-1],
            None,
            P0.T,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10, step_ts=ts),
            max_steps=100_000,
        )

    tight, fused = solve(diffrax.Tsit5()), solve(FusedTsit5())
    assert int(fused.stats["num_steps"]) == int(tight.stats["num_steps"])
    assert_allclose(fused.ys, tight.ys, rtol=0, atol=1e-11)
    eighth = oj.solve_meanfield(field, P0, ts, rtol=1e-10, atol=1e-10, solver=FusedDopri8())
    assert int(eighth.stats["num_steps"]) < int(tight.stats["num_steps"]) / 2
    assert_allclose(eighth.P, jnp.moveaxis(tight.ys, 1, -1), rtol=0, atol=2e-5)


def test_float32_solve_follows_float64():
    """The split's first 10 time units (mu from 100 to 74: some 400 radians of collective
    precession) in float32 and in float64, at the same rtol = atol = 1e-5: the two differ by
    float32's rounding accumulated over the precession (400 x 6e-8 = 2.4e-5, within 1e-4),
    far less than the tolerance's own error (2e-3 here, against rtol 1e-10)."""
    field64, P64, _, _ = _split(51)
    field32, P32, _, _ = _split(51, jnp.float32)
    ts = np.asarray([0.0, 5.0, 10.0])
    a = oj.solve_meanfield(field64, P64, ts, rtol=1e-5, atol=1e-5)
    b = oj.solve_meanfield(field32, P32, ts.astype(np.float32), rtol=1e-5, atol=1e-5)
    assert b.P.dtype == jnp.float32
    assert_allclose(b.P, a.P, rtol=0, atol=1e-4)


def test_new_numbers_of_the_same_shapes_do_not_recompile():
    """mu, the frequencies, the weights and the tolerances are traced: solving again with new
    values compiles nothing new."""
    field, P0, ts, _ = _split(31)
    ts = ts[:2]
    oj.solve_meanfield(field, P0, ts)
    cache = diffrax.diffeqsolve._cached._cache_size
    before = cache()
    changed = oj.GroupField(
        field.fractions * 1.1,
        field.system.omegas * 0.9,
        oj.System(gamma=0.0, mu=oj.Exponential(50.0, 20.0), B=field.system.B),
    )
    oj.solve_meanfield(changed, P0, ts, rtol=1e-6, atol=1e-7)
    assert cache() == before


def test_vmap_over_mu_is_each_solve():
    u, w = oj.angle_grid(8)
    g = w * (1 - 0.8 * (1 + u) ** 2 / 2)
    P0 = jnp.asarray(np.tile([0.0, 0.0, 1.0], (8, 1)))
    ts = jnp.asarray([0.0, 2.0, 4.0])
    B = jnp.asarray(oj.mixing_vector(0.1))

    def final(mu):
        system = oj.System(gamma=0.0, mu=mu, B=B, angles=oj.Axisymmetric(jnp.asarray(u)))
        field = oj.GroupField(jnp.asarray(g), jnp.full((8,), 1.0), system)
        return oj.solve_meanfield(field, P0, ts).P[-1]

    mus = jnp.asarray([0.5, 2.0, 5.0])
    batched = jax.vmap(final)(mus)
    for k, mu in enumerate(mus):
        assert_allclose(batched[k], final(mu), rtol=0, atol=1e-9)


@pytest.mark.long  # its reverse-mode programs take 10 s and 25 s to compile on a CPU
@pytest.mark.parametrize("solver", [None, FusedDopri8()], ids=["default", "FusedDopri8"])
def test_gradient_through_the_solve_equals_finite_differences(solver):
    """Reverse mode through the solve (diffrax's checkpointed adjoint; the default solver of a
    small state, and the fused eighth-order one of large states) against central differences,
    for the final flavour of the lowest mode as a function of mu and of the mixing angle."""
    G = 9
    omegas = jnp.linspace(0.2, 1.8, G)
    P0 = jnp.asarray(np.tile([np.sqrt(0.75), 0.0, 0.5], (G, 1)))
    ts = jnp.asarray([0.0, 3.0])

    def final(params):
        mu, theta = params
        B = jnp.stack([jnp.sin(2 * theta), 0.0, -jnp.cos(2 * theta)])
        field = oj.GroupField(jnp.full((G,), 1.0 / G), omegas, oj.System(gamma=0.0, mu=mu, B=B))
        return oj.solve_meanfield(field, P0, ts, rtol=1e-11, atol=1e-11, solver=solver).P[-1, 0, 2]

    x = jnp.asarray([2.0, 0.3])
    grad = jax.grad(final)(x)
    h = 1e-5
    fd = [(final(x.at[k].add(h)) - final(x.at[k].add(-h))) / (2 * h) for k in range(2)]
    assert_allclose(grad, fd, rtol=1e-6, atol=0)


def test_eln_crossing_growth_is_the_numpy_linearization():
    """The homogeneous fast instability of an axisymmetric gas with an ELN crossing (signed
    weights, no vacuum): `linear_stability`'s growth rate equals the largest real part of the
    eigenvalues of the NumPy field's Jacobian (central differences) about the flavour state."""
    A = 24
    u, w = oj.angle_grid(A)
    gauss = lambda width: np.exp(-((1 - u) ** 2) / (2 * width**2))
    g = w * (gauss(1.0) / (w @ gauss(1.0)) - 0.8 * gauss(0.5) / (w @ gauss(0.5)))
    B = np.array([0.0, 0.0, -1.0])
    system = oj.System(gamma=0.0, mu=1.0, B=jnp.asarray(B), angles=oj.Axisymmetric(u))
    field = oj.GroupField(jnp.asarray(g), jnp.zeros(A), system)
    P = np.tile([0.0, 0.0, 1.0], (A, 1))
    rate = float(oj.linear_stability(field, jnp.asarray(P)).growth_rate)

    numpy_field = lambda x: _numpy_axisymmetric_field(
        x.reshape(A, 3), np.zeros(A), g, u, B, 1.0, 0.0
    ).reshape(-1)
    h = 1e-6
    J = np.stack(
        [(numpy_field(P.reshape(-1) + h * e) - numpy_field(P.reshape(-1) - h * e)) / (2 * h)
         for e in np.eye(3 * A)],
        axis=1,
    )  # fmt: skip
    expected = np.max(np.linalg.eigvals(J).real)
    assert expected > 0.01  # unstable: the crossing
    assert_allclose(rate, expected, rtol=1e-6)


def test_weighted_axisymmetric_gas_keeps_lepton_number_and_lengths():
    """Rings with signed weights, energies and a tilted vacuum: the pure mean field keeps
    `B . sum_m w_m s_m` (vacuum alone) and every `|P_m|`, to the solver's tolerance."""
    u_grid, w_grid = oj.angle_grid(12)
    omegas, weights, u = oj.mode_grid([0.3, 1.0, 2.0], [0.5, 0.3, 0.2], u_grid, w_grid)
    weights = weights * np.where(u > 0.2, -0.6, 1.0)  # an ELN crossing at u = 0.2
    B = np.array([np.sin(0.4), 0.0, -np.cos(0.4)])
    system = oj.System(gamma=0.0, mu=5.0, B=jnp.asarray(B), angles=oj.Axisymmetric(u))
    field = oj.GroupField(jnp.asarray(weights), jnp.asarray(omegas), system)
    rng = np.random.default_rng(2)
    P0 = np.tile([0.0, 0.0, 1.0], (u.size, 1)) + 0.05 * rng.normal(size=(u.size, 3))
    P0 /= np.linalg.norm(P0, axis=-1, keepdims=True)
    P = np.asarray(oj.solve_meanfield(field, jnp.asarray(P0), jnp.linspace(0.0, 20.0, 5)).P)
    lepton = P @ B @ weights
    assert np.ptp(P[-1, :, 2]) > 0.1  # the modes moved apart
    assert_allclose(lepton, lepton[0], rtol=0, atol=1e-9)
    assert_allclose(np.linalg.norm(P, axis=-1), 1.0, rtol=0, atol=1e-8)


def test_axisymmetric_encounters_in_a_gas_average_to_the_ring_weights():
    """In a gas, `Axisymmetric(u)` draws a fresh azimuth per encounter: over 2e5 draws for each
    pair of rings, the mean of `x` and of `x^2` are `W_gh` and `W2_gh` of the mean field, within
    5 standard errors (the sample's own standard deviation over sqrt(2e5)); fixed key."""
    u = jnp.asarray([-0.6, 0.1, 0.9])
    model = oj.Axisymmetric(u).for_gas((2, 3, 4))
    first = np.asarray([0, 2, 5])  # a neutrino of each ring
    a, b = np.meshgrid(first, first, indexing="ij")
    n = 200_000
    draws = jax.random.uniform(jax.random.key(7), (n, 1, 1), jnp.float64)
    x = np.asarray(model.pair_x(draws, None, jnp.asarray(a), jnp.asarray(b), jnp.float64))
    W, W2 = (np.asarray(w) for w in model.group_weights(jnp.ones(3)))
    for sample, expected in ((x, W), (x**2, W2)):
        error = sample.std(axis=0) / np.sqrt(n)
        assert np.all(np.abs(sample.mean(axis=0) - expected) < 5 * error + 1e-15)
    per_neutrino = np.repeat(np.repeat(W, [2, 3, 4], axis=0), [2, 3, 4], axis=1)  # (9, 9)
    assert_allclose(model.mean_x(), per_neutrino.mean(), rtol=1e-12)
