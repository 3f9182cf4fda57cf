"""Three flavours (physics.md section 11): the algebra against the textbook, the gas against the
independent NumPy loops of `tests/reference_flavours.py` (3x3 matrices, 9x9 pair unitaries,
explicit partial traces, antineutrinos in their ordinary flavour states), closed-form vacuum
oscillations, conservation laws, positivity, and the gamma -> 0 limit against the
three-flavour mean field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj

from . import reference_flavours as ref
from .conftest import assert_allclose, run_options

ENGINES = {"dense": {}, "sharded": {"sharding": oj.Sharding(shards=1)}}
# A flavour-basis vacuum with every angle and the phase away from special values.
ANGLES = dict(theta12=0.59, theta13=0.15, theta23=0.84, delta=3.7)


def vacuum(ordering="normal", **angles):
    B = oj.pmns_vacuum(ordering, **(angles or ANGLES))
    fit = oj.NUFIT_6_0[ordering]
    r = fit["dm2_21"] / abs(fit["dm2_3l"])
    m2 = np.array([0.0, r, 1.0]) if ordering == "normal" else np.array([1 - r, 1.0, 0.0])
    a = angles or ANGLES
    U = ref.pmns(a["theta12"], a["theta13"], a["theta23"], a["delta"])
    return B, U, m2, U @ np.diag(m2) @ U.conj().T


def random_state(rng, pure=False):
    z = rng.normal(size=(3, 3 if not pure else 1)) + 1j * rng.normal(size=(3, 3 if not pure else 1))
    r = z @ z.conj().T
    return ref.bloch(r / np.trace(r).real)


@pytest.fixture(params=list(ENGINES))
def engine(request):
    return ENGINES[request.param]


def test_structure_constants_are_the_textbook_ones():
    """The nonzero `f_abc` and `d_abc` of SU(3) (1-based indices, Gell-Mann's table), and
    every other entry zero; for two flavours `f = epsilon` and `d = 0`."""
    f, d = oj.structure_constants(3)
    s3 = np.sqrt(3)
    f_table = {
        (1, 2, 3): 1,
        (1, 4, 7): 0.5,
        (1, 5, 6): -0.5,
        (2, 4, 6): 0.5,
        (2, 5, 7): 0.5,
        (3, 4, 5): 0.5,
        (3, 6, 7): -0.5,
        (4, 5, 8): s3 / 2,
        (6, 7, 8): s3 / 2,
    }
    d_table = {(1, 1, 8): 1 / s3, (2, 2, 8): 1 / s3, (3, 3, 8): 1 / s3, (8, 8, 8): -1 / s3,
               (4, 4, 8): -1 / (2 * s3), (5, 5, 8): -1 / (2 * s3), (6, 6, 8): -1 / (2 * s3),
               (7, 7, 8): -1 / (2 * s3), (1, 4, 6): 0.5, (1, 5, 7): 0.5, (2, 5, 6): 0.5,
               (3, 4, 4): 0.5, (3, 5, 5): 0.5, (2, 4, 7): -0.5, (3, 6, 6): -0.5,
               (3, 7, 7): -0.5}  # fmt: skip
    import itertools

    f_ref, d_ref = np.zeros((8, 8, 8)), np.zeros((8, 8, 8))
    for (a, b, c), v in f_table.items():
        signs = (1, -1, -1, 1, 1, -1)
        for p, sign in zip(itertools.permutations((a, b, c)), signs, strict=True):
            f_ref[tuple(i - 1 for i in p)] = sign * v
    for (a, b, c), v in d_table.items():
        for p in itertools.permutations((a, b, c)):
            d_ref[tuple(i - 1 for i in p)] = v
    assert_allclose(f, f_ref, rtol=0, atol=1e-15)
    assert_allclose(d, d_ref, rtol=0, atol=1e-15)
    f2, d2 = oj.structure_constants(2)
    assert f2[0, 1, 2] == 1 and f2[1, 0, 2] == -1 and np.abs(d2).max() < 1e-15
    assert_allclose(oj.gell_mann(3), ref.GELL_MANN, rtol=0, atol=1e-15)


def test_states_matrices_eigenvalues_and_entropy():
    rng = np.random.default_rng(0)
    P = np.stack([random_state(rng) for _ in range(20)] + [random_state(rng, pure=True)])
    rhos = np.stack([ref.rho(p) for p in P])
    assert_allclose(oj.density_matrix(jnp.asarray(P)), rhos, rtol=0, atol=1e-14)
    assert_allclose(oj.bloch_vector(jnp.asarray(rhos)), P, rtol=0, atol=1e-14)
    lam = np.linalg.eigvalsh(rhos)
    assert_allclose(np.sort(oj.eigenvalues(jnp.asarray(P)), axis=-1), lam, rtol=0, atol=1e-12)
    S = -np.sum(np.where(lam > 1e-300, lam * np.log(np.maximum(lam, 1e-300)), 0), axis=-1)
    assert_allclose(oj.von_neumann_entropy(jnp.asarray(P)), S, rtol=0, atol=1e-7)
    assert abs(float(oj.von_neumann_entropy(jnp.zeros(8))) - np.log(3)) < 1e-14
    assert_allclose(
        oj.occupations(jnp.asarray(P)), np.real(np.einsum("nii->ni", rhos)), rtol=0, atol=1e-14
    )
    for k, name in enumerate(("e", "mu", "tau")):
        assert_allclose(ref.rho(oj.flavour_state(name)), np.diag(np.eye(3)[k]), rtol=0, atol=1e-15)


@pytest.mark.parametrize("ordering", ["normal", "inverted"])
def test_the_vacuum_vector_is_the_pmns_mass_matrix(ordering):
    """`pmns_vacuum` against `M = U diag(m^2) U^dag` from the element-by-element PDG matrix,
    and its NuFIT 6.0 defaults (degrees) against the same angles given in radians."""
    B, _, _, M = vacuum(ordering)
    assert_allclose(ref.rho(B) - np.eye(3) / 3, M - np.trace(M) / 3 * np.eye(3), rtol=0, atol=1e-14)
    fit = oj.NUFIT_6_0[ordering]
    angles = {k: np.radians(fit[k]) for k in ("theta12", "theta13", "theta23", "delta")}
    assert_allclose(
        oj.pmns_vacuum(ordering), oj.pmns_vacuum(ordering, **angles), rtol=0, atol=1e-15
    )
    assert_allclose(oj.flavour_axis(3), ref.bloch(np.diag([1.0, 0, 0])), rtol=0, atol=1e-15)


@pytest.mark.parametrize("ordering", ["normal", "inverted"])
@pytest.mark.parametrize("antineutrino", [False, True])
def test_vacuum_oscillation_probabilities(ordering, antineutrino):
    """A group of identical particles does not change in its encounters, so each oscillates
    alone: `P(nu_alpha -> nu_beta)` (or the antineutrinos') at every save against the textbook
    formula with the PMNS matrix and a CP phase (which makes nu and nubar differ)."""
    B, U, m2, _ = vacuum(ordering)
    omega, dt, n = 1.3, 0.05, 400
    for alpha in range(3):
        P0 = oj.flavour_state(("e", "mu", "tau")[alpha])
        gas = oj.Gas((2,), (omega,), P0[None], antineutrino=antineutrino)
        sol = oj.simulate_gas(
            gas,
            system=oj.System(gamma=0.1, B=B),
            schedule=oj.Stochastic(dt=dt),
            sampling=oj.Sampling(key=jax.random.key(0), n_steps=n, dtype=jnp.float64),
            saveat=oj.SaveAt(every=20),
        )
        occupations = np.asarray(oj.occupations(sol.group_mean[0, :, 0]))
        expected = np.array([
            [ref.vacuum_probability(U, m2, omega * t, alpha, b, antineutrino) for b in range(3)]
            for t in sol.ts
        ])  # fmt: skip
        assert_allclose(occupations, expected, rtol=0, atol=1e-11)
        assert expected.min() < 0.9  # the flavours did oscillate
    # CP violation: the e -> mu probabilities of nu and nubar differ at the delta used.
    t = 2.0
    assert (
        abs(ref.vacuum_probability(U, m2, t, 0, 1) - ref.vacuum_probability(U, m2, t, 0, 1, True))
        > 1e-3
    )


PAIRS = {"nu-nu": (False, False), "nu-nubar": (False, True), "nubar-nubar": (True, True)}


# The sharded engine runs the same kernel (its three-flavour pairs are checked by the mixed gas
# below and tests/test_flavours_runs.py); its six pair runs are in the slow suite, for the
# default suite's time budget.
@pytest.mark.parametrize(
    "engine",
    [ENGINES["dense"], pytest.param(ENGINES["sharded"], marks=pytest.mark.slow)],
    ids=["dense", "sharded"],
)
@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("schedule", ["deterministic", "stochastic"])
def test_a_pair_matches_the_matrix_loop(engine, pair, schedule):
    """Two particles meet at every step (deterministic rounds, or the stochastic schedule at
    `p = 1`), so OILE is deterministic: the gas's Bloch-vector map (with the nu-nubar map of
    physics.md section 11) against 9x9 unitaries and partial traces, with PMNS vacuum and
    matter, to rounding. 10 steps: the map amplifies rounding by about 2 per step."""
    anti = PAIRS[pair]
    rng = np.random.default_rng(5)
    P0 = np.stack([random_state(rng, pure=True), random_state(rng)])
    omegas, gamma, mu, matter, n = (0.7, 1.3), 0.3, 1.5, 0.9, 10
    B, _, _, M = vacuum()
    gas = oj.Gas((1, 1), jnp.array(omegas), jnp.array(P0), antineutrino=anti)
    sched = oj.Deterministic() if schedule == "deterministic" else oj.Stochastic(dt=gamma / mu)
    sol = oj.simulate_gas(
        gas,
        **engine,
        system=oj.System(gamma=gamma, mu=mu, B=B, angles="fixed-angle", matter=matter),
        schedule=sched,
        sampling=oj.Sampling(key=jax.random.key(0), n_steps=n, dtype=jnp.float64),
        saveat=oj.SaveAt(every=5),
    )
    loop = ref.pair_run(P0, anti, omegas, gamma=gamma, mu=mu, M=M, matter=matter, x=1.0, n_steps=n)
    assert_allclose(sol.group_mean[0], loop[::5], rtol=0, atol=1e-11)
    assert np.abs(loop[-1] - loop[0]).max() > 0.3


@pytest.mark.long  # 12 s and more over its cases: make test-long, in CI
def test_a_mixed_gas_against_the_matrix_loop(engine):
    """Three neutrinos and three antineutrinos in random pairs with isotropic angles, PMNS
    vacuum and matter: group means of the gas (500 realizations) against the matrix loop
    (300), within 4 combined standard errors, after the means moved."""
    rng = np.random.default_rng(1)
    P0 = np.stack([random_state(rng, pure=True), random_state(rng)])
    anti = (False,) * 3 + (True,) * 3
    gamma, mu, matter, n = 0.5, 1.0, 0.7, 12
    B, _, _, M = vacuum()
    gas = oj.Gas((3, 3), jnp.array([0.6, 1.1]), jnp.array(P0), antineutrino=(False, True))
    sol = oj.simulate_gas(
        gas,
        **engine,
        system=oj.System(gamma=gamma, mu=mu, B=B, matter=matter),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(
            key=jax.random.key(11), n_steps=n, n_realizations=500, dtype=jnp.float64
        ),
        saveat=oj.SaveAt(every=n),
    )
    starts, omegas = np.repeat(P0, 3, axis=0), np.repeat([0.6, 1.1], 3)
    runs = np.stack([
        ref.gas_run(starts, anti, omegas, gamma=gamma, mu=mu, M=M, matter=matter, n_steps=n,
                    rng=rng)
        for _ in range(300)
    ])  # fmt: skip
    loop = np.stack([runs[:, :3].mean(1), runs[:, 3:].mean(1)], axis=1)
    gas_means = sol.group_mean[:, -1]
    se = np.sqrt(gas_means.var(0, ddof=1) / 500 + loop.var(0, ddof=1) / 300)
    assert np.all(np.abs(gas_means.mean(0) - loop.mean(0)) < 4 * se)
    assert np.abs(loop.mean(0) - P0).max() > 10 * se.max()


def embed(P2):
    """A two-flavour Bloch vector as the three-flavour state in the e-mu block (no tau)."""
    P2 = np.asarray(P2)
    out = np.zeros(P2.shape[:-1] + (8,))
    out[..., :3] = P2
    out[..., 7] = 1 / np.sqrt(3)
    return out


@pytest.mark.parametrize(
    "schedule,angles",
    [("stochastic", "isotropic"), ("deterministic", "fixed-velocities")],
)
@pytest.mark.long  # 30 s over its cases: make test-long, in CI
def test_two_flavours_inside_three(schedule, angles):
    """A three-flavour neutrino gas that lives in the e-mu block (a vacuum vector and matter
    without tau parts) is the two-flavour gas with the same key: the same numbers to rounding
    (not bit-identical: the programs differ). The tau components stay where they were."""
    P2 = np.array([[0.6, 0.0, 0.7], [-0.2, 0.5, -0.6]])
    B2 = np.asarray(oj.mixing_vector(0.4))
    sched = oj.Stochastic(dt=0.1) if schedule == "stochastic" else oj.Deterministic()
    kw = dict(
        gamma=0.3, mu=1.2, schedule=sched, angles=angles, key=jax.random.key(4), n_steps=30,
        save_every=10, n_realizations=3, dtype=jnp.float64, matter=0.8,
    )  # fmt: skip
    two = oj.simulate_gas(oj.Gas((4, 6), (0.3, -0.5), P2), **run_options(B=B2, **kw))
    B3, L3 = embed(B2), np.zeros(8)
    B3[7], L3[2] = 0.0, 1.0
    three = oj.simulate_gas(oj.Gas((4, 6), (0.3, -0.5), embed(P2)), **run_options(B=B3, L=L3, **kw))
    assert_allclose(three.group_mean[..., :3], two.group_mean, rtol=0, atol=1e-12)
    assert_allclose(three.group_mean[..., 3:7], 0.0, rtol=0, atol=1e-12)
    assert_allclose(three.group_mean[..., 7], 1 / np.sqrt(3), rtol=0, atol=1e-12)
    assert_allclose(three.group_entropy, two.group_entropy, rtol=0, atol=1e-7)
    assert np.abs(two.group_mean[:, -1] - two.group_mean[:, 0]).max() > 0.1


def test_a_third_flavour_opens_the_pair_channel():
    """With antineutrinos the e-mu block is not closed: a nu_e nubar_e pair annihilates into
    nu_tau nubar_tau (`-x S^{T_B}` couples `|ee>` to `|tau tau>`), a channel two flavours do not
    have. Without vacuum the gas keeps `sum rho - sum rhobar` exactly, so the tau populations of
    the two species grow equally."""
    P0 = np.stack([np.asarray(oj.flavour_state("e"))] * 2)
    gas = oj.Gas((8, 8), (0.0, 0.0), P0, antineutrino=(False, True))
    sol = oj.simulate_gas(
        gas,
        system=oj.System(gamma=0.5, B=oj.pmns_vacuum(**ANGLES)),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(key=jax.random.key(0), n_steps=20, dtype=jnp.float64),
        saveat=oj.SaveAt(every=20),
    )
    tau = sol.occupations[0, -1, :, 2]
    assert tau.min() > 0.05
    assert_allclose(tau[0], tau[1], rtol=0, atol=1e-12)
    assert_allclose(sol.flavour_numbers[0, -1], sol.flavour_numbers[0, 0], rtol=0, atol=1e-12)


@pytest.mark.long  # 28 s: make test-long, in CI
def test_conserved_totals():
    """Both species, every encounter: `sum s = sum_nu P - sum_nubar Pbar` is conserved (no
    vacuum). With matter and a vacuum without mixing (every angle zero) the flavour lepton
    numbers `sum_nu rho_aa - sum_nubar rhobar_aa` are conserved, while the states move."""
    rng = np.random.default_rng(2)
    P0 = np.stack([random_state(rng, pure=True), random_state(rng), random_state(rng)])
    gas = oj.Gas((4, 4, 6), (0.0, 0.0, 0.0), P0, antineutrino=(False, True, False))
    kw = dict(gamma=0.4, key=jax.random.key(1), n_steps=60, save_every=20, dtype=jnp.float64)
    sol = oj.simulate_gas(
        gas, **run_options(schedule=oj.Stochastic(dt=0.2), B=oj.pmns_vacuum(**ANGLES), **kw)
    )
    assert_allclose(sol.total[0], np.broadcast_to(sol.total[0, 0], sol.total[0].shape),
                    rtol=0, atol=1e-12)  # fmt: skip
    assert np.abs(sol.group_mean[0, -1] - sol.group_mean[0, 0]).max() > 0.1
    gas = oj.Gas((4, 4, 6), (0.7, 1.3, 0.4), P0, antineutrino=(False, True, False))
    flat = oj.pmns_vacuum(theta12=0.0, theta13=0.0, theta23=0.0, delta=0.0)
    L = oj.flavour_axis(3)  # given: by default a matter axis commuting with B is refused
    sol = oj.simulate_gas(
        gas, **run_options(schedule=oj.Deterministic(), B=flat, matter=2.0, L=L, **kw)
    )
    numbers = sol.flavour_numbers[0]
    assert_allclose(numbers, np.broadcast_to(numbers[0], numbers.shape), rtol=0, atol=1e-12)
    assert np.abs(sol.group_mean[0, -1] - sol.group_mean[0, 0]).max() > 0.1


@pytest.mark.parametrize("antineutrino", [False, True])
@pytest.mark.parametrize(
    "dtype,det_bound,purity_bound", [(jnp.float32, 2e-7, 3e-4), (jnp.float64, 1e-15, 5e-12)]
)
def test_positivity_over_a_long_run(antineutrino, dtype, det_bound, purity_bound):
    """Trace 1 and Hermiticity hold by construction (`rho = 1/3 + P.lambda/2`); positivity is
    what rounding could break, and it is most at risk for pure states. A group of one pure
    state (its encounters change nothing but rounding) turns in PMNS vacuum and matter (the
    per-group turn matrices) for 4000 steps: every saved state keeps `det rho >= -det_bound`
    and `Tr rho^2 <= 1 + purity_bound`. Measured worst on one x86_64 CPU: float32 det -2.0e-8,
    purity 1 + 5.8e-5; float64 det -1.4e-17, purity 1 + 5.7e-13 (rounding, so the bounds
    leave a margin for other CPUs)."""
    rng = np.random.default_rng(3)
    gas = oj.Gas((64,), (0.8,), random_state(rng, pure=True)[None], antineutrino=antineutrino)
    sol = oj.simulate_gas(
        gas,
        system=oj.System(gamma=0.2, B=oj.pmns_vacuum(**ANGLES), matter=1.5),
        schedule=oj.Stochastic(dt=0.1),
        sampling=oj.Sampling(key=jax.random.key(2), n_steps=4000, dtype=dtype),
        saveat=oj.SaveAt(every=400, state=True),
    )
    from oile_jax._physics.states import invariants

    purity, det = (np.asarray(x) for x in invariants(jnp.asarray(sol.state, jnp.float64)))
    assert det.min() > -det_bound and purity.max() < 1 + purity_bound
    # The states did move (vacuum and matter), so the turns were exercised.
    assert np.abs(sol.state[0, -1, 0] - sol.state[0, 0, 0]).max() > 0.1


@pytest.mark.long  # 28 s: make test-long and CI, to keep the default suite inside 10 minutes
def test_gamma_to_zero_is_the_three_flavour_mean_field():
    """The poster's two-group gas with a third flavour and antineutrinos: OILE's group means
    against the three-flavour mean field converge at first order in gamma (the error halves
    with gamma), and the mean field plus the collision term (with its nu-nubar `d` part and the
    schedule's step term) lies within 4 standard errors of OILE."""
    P0 = np.stack([np.asarray(oj.flavour_state("e")), np.asarray(oj.flavour_state("mu"))])
    P0 = 0.98 * P0 + 0.02 * np.asarray(oj.flavour_state("tau"))
    fractions, omegas, anti = np.array([0.5, 0.5]), np.array([0.5, 1.0]), (False, True)
    B, mu, t_max, R, N = oj.pmns_vacuum(**ANGLES), 1.0, 2.0, 64, 400
    errors = []
    for gamma in (0.04, 0.02):
        gas = oj.Gas((N // 2, N // 2), omegas, P0, antineutrino=anti)
        dt = gamma / 2
        sol = oj.simulate_gas(
            gas,
            system=oj.System(gamma=gamma, mu=mu, B=B),
            schedule=oj.Stochastic(dt=dt),
            sampling=oj.Sampling(
                key=jax.random.key(5), t_max=t_max, n_realizations=R, dtype=jnp.float64
            ),
            saveat=oj.SaveAt(every=int(round(t_max / dt))),
        )
        means = sol.group_mean[:, -1]
        field = lambda collision, gamma=gamma, dt=dt: oj.GroupField(
            fractions,
            jnp.asarray(omegas),
            oj.System(gamma=gamma, mu=mu, B=B),
            collision=collision,
            n=N,
            dt=dt if collision != "none" else None,
            antineutrino=jnp.asarray(anti),
        )
        ts = jnp.asarray([0.0, t_max])
        mf = oj.solve_meanfield(field("none"), jnp.asarray(P0), ts).P[-1]
        mfc = oj.solve_meanfield(field("stochastic"), jnp.asarray(P0), ts).P[-1]
        se = means.std(0, ddof=1) / np.sqrt(R)
        assert np.all(np.abs(means.mean(0) - mfc) < 4 * se + 1e-4)
        errors.append(np.abs(means.mean(0) - mf).max())
    ratio = errors[0] / errors[1]
    assert 1.6 < ratio < 2.5, errors


FOREGROUND = {
    "nu meets nu": (False, False),
    "nu meets nubar": (False, True),
    "nubar meets nu": (True, False),
    "nubar meets nubar": (True, True),
}


@pytest.mark.parametrize("species", list(FOREGROUND))
def test_the_foreground_matches_the_matrix_loop(species):
    """A foreground particle meets a fresh background particle at every deterministic round
    (fixed angle, so no randomness): the Bloch-vector maps (SWAP, or the nu-nubar map of
    physics.md section 11), PMNS vacuum and matter, against 9x9 unitaries and partial traces."""
    anti = FOREGROUND[species]
    rng = np.random.default_rng(11)
    P0, P_b = random_state(rng, pure=True), random_state(rng)
    omega, gamma, mu, matter, n = 0.7, 0.4, 1.5, 0.9, 12
    B, _, _, M = vacuum()
    sol = oj.simulate_foreground(
        P0,
        P_b,
        system=oj.System(gamma=gamma, mu=mu, B=B, angles="fixed-angle", matter=matter),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(key=jax.random.key(0), n_steps=n, dtype=jnp.float64),
        saveat=oj.SaveAt(every=3),
        omega=omega,
        antineutrino=anti[0],
        background_antineutrino=anti[1],
    )
    loop = ref.foreground_run(
        P0, P_b, anti, omega, gamma=gamma, mu=mu, M=M, matter=matter, x=1.0, n_steps=n
    )
    assert_allclose(sol.P[0], loop[::3], rtol=0, atol=1e-11)
    assert np.abs(loop[-1] - loop[0]).max() > 0.3


def master_loop(P0, P_b, M, *, omega, gamma, mu, t_max, n_steps):
    """The foreground master equation of physics.md section 5 written for density matrices,
    `drho/dt = -i [omega M + mu_R rho_b, rho] - Gamma (rho - rho_b)` with the closed-form rates,
    integrated by classical RK4 in NumPy."""
    mu_R = mu * np.sin(2 * gamma) ** 2 / (4 * gamma**2)
    Gamma = (mu / gamma) * (0.5 - np.sin(4 * gamma) / (8 * gamma))
    r, r_b = ref.rho(P0), ref.rho(P_b)
    H = omega * M + mu_R * r_b
    f = lambda r: -1j * (H @ r - r @ H) - Gamma * (r - r_b)
    h = t_max / n_steps
    for _ in range(n_steps):
        k1 = f(r)
        k2 = f(r + h / 2 * k1)
        k3 = f(r + h / 2 * k2)
        k4 = f(r + h * k3)
        r = r + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return ref.bloch(r)


def test_the_three_flavour_foreground_master_equation():
    """`foreground_mean` (the exponential of the 9x9 affine generator) and `ForegroundField`
    (through diffrax) in three flavours, against the master equation for 3x3 density matrices
    integrated by RK4 (independent of the Bloch-vector algebra)."""
    rng = np.random.default_rng(3)
    P0, P_b = random_state(rng, pure=True), random_state(rng)
    B, _, _, M = vacuum()
    kw = dict(omega=0.8, gamma=0.3, mu=1.2)
    loop = master_loop(P0, P_b, M, **kw, t_max=4.0, n_steps=4000)
    exact = oj.foreground_mean(P0, P_b, jnp.array([4.0]), B=B, **kw)[0]
    assert_allclose(exact, loop, rtol=0, atol=1e-10)
    field = oj.ForegroundField(
        jnp.asarray(P_b),
        jnp.asarray(0.8),
        oj.System(gamma=jnp.asarray(0.3), mu=jnp.asarray(1.2), B=B),
        collision="stochastic",
    )
    sol = oj.solve_meanfield(field, jnp.asarray(P0), jnp.array([0.0, 4.0]))
    assert_allclose(sol.P[-1], loop, rtol=0, atol=1e-7)
    assert np.abs(loop - P0).max() > 0.3


def test_the_three_flavour_foreground_ensemble_is_the_closed_form():
    """The stochastic schedule's ensemble mean (4000 realizations, isotropic angles) against
    its exact mean `foreground_mean(dt=...)`, every component at every save within 4.5 standard
    errors of the mean (88 values: a false alarm has probability about 6e-4 for a correct code;
    the key is fixed)."""
    e, mu_ = oj.flavour_state("e", 3), oj.flavour_state("mu", 3)
    B = vacuum()[0]
    kw = dict(gamma=0.3, omega=0.8, B=B)
    sol = oj.simulate_foreground(
        e,
        mu_,
        **run_options(
            **kw,
            schedule=oj.Stochastic(dt=0.05),
            key=jax.random.key(0),
            n_steps=200,
            save_every=20,
            n_realizations=4000,
            dtype=jnp.float64,
        ),
    )
    exact = oj.foreground_mean(e, mu_, sol.ts, **kw, dt=0.05)
    se = np.asarray(sol.stderr[1:])
    assert se.min() > 1e-6  # every value has a spread: none is compared at a zero tolerance
    assert np.all(np.abs(sol.mean[1:] - exact[1:]) < 4.5 * se)
    assert np.abs(exact[-1] - exact[0]).max() > 0.3


def test_encounter_functions_in_three_flavours():
    """`encounter` and `encounter_antineutrino` on one pair against the 9x9 unitaries; for two
    flavours `encounter_antineutrino` is the SWAP on the isospins `P`, `-Pbar`."""
    rng = np.random.default_rng(8)
    P, Q = random_state(rng), random_state(rng)
    c = 0.37
    for anti, fn in (((False, False), oj.encounter), ((False, True), oj.encounter_antineutrino)):
        U = ref.expm_hermitian(ref.pair_hamiltonian(*anti, 1.0), c)
        r_i, r_j = ref.partial_traces(
            U @ np.kron(ref.from_physical(P, anti[0]), ref.from_physical(Q, anti[1])) @ U.conj().T
        )
        got = fn(jnp.asarray(P), jnp.asarray(Q), c)
        want = (ref.to_physical(r_i, anti[0]), ref.to_physical(r_j, anti[1]))
        assert_allclose(np.stack(got), np.stack(want), rtol=0, atol=1e-13)
    p, q = np.array([0.3, -0.5, 0.6]), np.array([-0.2, 0.7, 0.1])
    P2, Qbar2 = oj.encounter_antineutrino(jnp.asarray(p), jnp.asarray(q), c)
    s_i, s_j = oj.encounter(jnp.asarray(p), jnp.asarray(-q), c)
    assert_allclose(np.stack([P2, -Qbar2]), np.stack([s_i, s_j]), rtol=0, atol=1e-15)


def test_the_three_flavour_multi_angle_field_against_matrices():
    """`MultiAngleField` in three flavours with both species, against density matrices: the mean
    field from the ordinary-state Hamiltonians (`omega M` or `omega M^*`, `x SWAP` within a
    species and `-x S^{T_B}` between species, traced over the partner), and the collision term
    as `mu gamma/(N-1) sum_j x_ij^2 K_ij`, `K_ij` the second-order coefficient of the exact 9x9
    pair map (`(d(c) + d(-c)) / 2c^2` at small `c`; physics.md sections 6 and 11)."""
    rng = np.random.default_rng(21)
    N, mu, gamma = 6, 1.3, 0.05
    anti = np.array([False, True, False, True, True, False])
    v = rng.normal(size=(N, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    w = rng.uniform(0.2, 1.0, N)
    P = np.stack([random_state(rng) for _ in range(N)])
    B, _, _, M = vacuum()
    X = 1 - v @ v.T
    rhos = [ref.from_physical(P[i], anti[i]) for i in range(N)]
    mean_field, collision = np.zeros((N, 8)), np.zeros((N, 8))
    for i in range(N):
        H = ref.one_body(w[i], M, 0.0, anti[i])
        for j in range(N):
            if j == i:
                continue
            # The partner's partial trace of the pair Hamiltonian: rho_j itself, or its transpose.
            same = anti[i] == anti[j]
            H = H + mu / (N - 1) * X[i, j] * (rhos[j] if same else -rhos[j].T)
            c = 1e-4
            U = [
                ref.expm_hermitian(ref.pair_hamiltonian(anti[i], anti[j], 1.0), s) for s in (c, -c)
            ]
            after = [ref.partial_traces(u @ np.kron(rhos[i], rhos[j]) @ u.conj().T)[0] for u in U]
            K = (ref.to_physical(after[0] + after[1] - 2 * rhos[i], anti[i])) / (2 * c**2)
            collision[i] += mu * gamma / (N - 1) * X[i, j] ** 2 * K
        mean_field[i] = ref.to_physical(-1j * (H @ rhos[i] - rhos[i] @ H), anti[i])
    # The mean field is exact; the collision's reference has the O(c^2) error of its difference.
    cases = (("none", mean_field, 1e-12), ("stochastic", mean_field + collision, 1e-6))
    for option, expected, atol in cases:
        field = oj.MultiAngleField(
            jnp.asarray(w),
            jnp.asarray(v),
            oj.System(gamma=jnp.asarray(gamma), mu=jnp.asarray(mu), B=B),
            collision=option,
            antineutrino=jnp.asarray(anti),
        )
        assert_allclose(field(0.0, jnp.asarray(P)), expected, rtol=0, atol=atol, err_msg=option)
    assert np.abs(collision).max() > 1e-3


@pytest.mark.parametrize("n_groups", [None, 40])
def test_group_field_is_the_expansion_of_the_exact_pair_map(n_groups):
    """`GroupField` (three flavours, beams, two neutrino groups and an antineutrino group, no
    vacuum, stochastic collision term) against the expansion of the exact 9x9 pair map of
    `reference_flavours`, in NumPy: `dP_g/dt = mu N/(N-1) sum_h f_h (x_gh D1_gh + gamma x_gh^2
    D2_gh)` (the self-pair left out for finite N), with `D1`, `D2` the first and second
    orders in `c` of the change of `P_g` when it meets `P_h` at angle `c`, taken by symmetric
    differences of the exact map. Distinguishes the species of each pair (the nu-nubar pair's
    extra term) and the beams' weights."""
    rng = np.random.default_rng(7)
    anti = (False, False, True)
    fractions = np.asarray([0.5, 0.3, 0.2])
    d = rng.normal(size=(3, 3))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    x = 1 - d @ d.T
    P = []
    for _ in range(3):
        v = rng.normal(size=8)
        P.append(0.6 * v / np.linalg.norm(v))  # well inside the state space
    P = np.asarray(P)
    gamma, mu, eps = 0.05, 1.3, 1e-3

    def change(g, h, c):
        r_g, r_h = ref.from_physical(P[g], anti[g]), ref.from_physical(P[h], anti[h])
        U = ref.expm_hermitian(ref.pair_hamiltonian(anti[g], anti[h], 1.0), c)
        after = ref.partial_traces(U @ np.kron(r_g, r_h) @ U.conj().T)[0]
        return ref.to_physical(after, anti[g]) - P[g]

    expected = np.zeros_like(P)
    for g in range(3):
        for h in range(3):
            plus, minus = change(g, h, eps), change(g, h, -eps)
            D1, D2 = (plus - minus) / (2 * eps), (plus + minus) / (2 * eps**2)
            weight = fractions[h]
            if n_groups is not None:  # the self-pair: one partner fewer in one's own group
                weight = (n_groups * fractions[h] - (g == h)) / (n_groups - 1)
            expected[g] += mu * weight * (x[g, h] * D1 + gamma * x[g, h] ** 2 * D2)
    system = oj.System(
        gamma=gamma, mu=mu, B=oj.pmns_vacuum("normal", "flavour"), angles=oj.Beams(jnp.asarray(d))
    )
    field = oj.GroupField(
        jnp.asarray(fractions), jnp.zeros(3), system, "stochastic", n=n_groups,
        antineutrino=jnp.asarray(anti),
    )  # fmt: skip
    # The symmetric differences are exact to O(eps^2) ~ 1e-6 of each order.
    assert_allclose(field(0.0, jnp.asarray(P)), expected, rtol=0, atol=2e-6)
