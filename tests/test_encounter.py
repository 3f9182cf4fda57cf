import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj

from . import reference as ref
from .conftest import assert_allclose


def random_bloch(rng, n, rmin=0.0):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True) * rng.uniform(rmin, 1, size=(n, 1))


def test_spec_reference_value():
    P_i, P_j = oj.encounter(jnp.asarray([0.0, 0, 1]), jnp.asarray([1.0, 0, 0]), 0.3)
    assert_allclose(P_i, [0.087332, -0.282321, 0.912668], rtol=0, atol=5e-7)
    assert_allclose(P_j, [0.912668, 0.282321, 0.087332], rtol=0, atol=5e-7)
    P_i32, _ = oj.encounter(
        jnp.asarray([0.0, 0, 1], jnp.float32), jnp.asarray([1.0, 0, 0], jnp.float32), 0.3
    )
    assert P_i32.dtype == jnp.float32
    assert_allclose(P_i32, [0.087332, -0.282321, 0.912668], rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_pair_total_is_conserved(dtype):
    rng = np.random.default_rng(3)
    P_i = jnp.asarray(random_bloch(rng, 1000), dtype)
    P_j = jnp.asarray(random_bloch(rng, 1000), dtype)
    c = jnp.asarray(rng.uniform(0, 10, 1000), dtype)
    new_i, new_j = oj.encounter(P_i, P_j, c)
    assert new_i.dtype == dtype
    eps = float(jnp.finfo(dtype).eps)
    # One rounding of P_i + d and one of P_j - d: at most a few ulps of |P| <= 1.
    assert float(jnp.max(jnp.abs(new_i + new_j - (P_i + P_j)))) <= 4 * eps


def test_purity_never_increases():
    rng = np.random.default_rng(4)
    P_i, P_j = random_bloch(rng, 5000), random_bloch(rng, 5000)
    c = rng.uniform(0, 2 * np.pi, 5000)
    new_i, new_j = oj.encounter(jnp.asarray(P_i), jnp.asarray(P_j), jnp.asarray(c))
    n = lambda P: np.linalg.norm(np.asarray(P), axis=-1)
    bound = np.maximum(n(P_i), n(P_j))
    assert np.all(n(new_i) <= bound + 1e-14) and np.all(n(new_j) <= bound + 1e-14)
    before = n(P_i) ** 2 + n(P_j) ** 2
    after = n(new_i) ** 2 + n(new_j) ** 2
    assert np.all(after <= before + 1e-14)
    # And it strictly decreases for non-parallel pure states at generic c (entanglement).
    pure_i, pure_j = oj.encounter(jnp.asarray([0.0, 0, 1]), jnp.asarray([1.0, 0, 0]), 0.3)
    assert float(jnp.linalg.norm(pure_i)) < 1 - 1e-3


def test_small_c_expansion():
    rng = np.random.default_rng(5)
    P_i, P_j = random_bloch(rng, 20, 0.5), random_bloch(rng, 20, 0.5)
    errors = []
    cs = np.array([1e-1, 3e-2, 1e-2, 3e-3])
    for c in cs:
        new_i, _ = oj.encounter(jnp.asarray(P_i), jnp.asarray(P_j), c)
        predicted = c * np.cross(P_j, P_i) + c**2 * (P_j - P_i)
        errors.append(np.max(np.abs(np.asarray(new_i) - P_i - predicted)))
    order = np.polyfit(np.log(cs), np.log(errors), 1)[0]
    assert 2.9 < order < 3.1, order


def test_bloch_equals_density_matrix_equals_partial_trace():
    rng = np.random.default_rng(6)
    P_i, P_j = random_bloch(rng, 8), random_bloch(rng, 8)
    c = rng.uniform(0, 3, 8)
    bloch_i, bloch_j = oj.encounter(jnp.asarray(P_i), jnp.asarray(P_j), jnp.asarray(c))
    rho_i, rho_j = oj.encounter_rho(
        oj.bloch_to_rho(jnp.asarray(P_i)), oj.bloch_to_rho(jnp.asarray(P_j)), jnp.asarray(c)
    )
    assert_allclose(oj.rho_to_bloch(rho_i), bloch_i, rtol=0, atol=1e-14)
    assert_allclose(oj.rho_to_bloch(rho_j), bloch_j, rtol=0, atol=1e-14)
    for k in range(8):
        expected_i, expected_j = ref.encounter(P_i[k], P_j[k], c[k])
        assert_allclose(bloch_i[k], expected_i, rtol=0, atol=1e-14)
        assert_allclose(bloch_j[k], expected_j, rtol=0, atol=1e-14)


def random_density_matrix(rng, n):
    A = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    rho = A @ A.conj().T
    return rho / np.trace(rho)


def test_three_flavour_density_matrix_form():
    rng = np.random.default_rng(7)
    for c in (0.0, 0.2, 1.3, 4.0):
        rho_i, rho_j = random_density_matrix(rng, 3), random_density_matrix(rng, 3)
        new_i, new_j = oj.encounter_rho(jnp.asarray(rho_i), jnp.asarray(rho_j), c)
        expected_i, expected_j = ref.encounter_rho(rho_i, rho_j, c)
        assert_allclose(new_i, expected_i, rtol=0, atol=1e-14)
        assert_allclose(new_j, expected_j, rtol=0, atol=1e-14)
        assert_allclose(new_i + new_j, rho_i + rho_j, rtol=0, atol=1e-14)


def test_jit_vmap_grad():
    P_i, P_j = jnp.asarray([0.2, 0.1, 0.9]), jnp.asarray([0.7, -0.3, 0.1])
    f = jax.jit(lambda c: oj.encounter(P_i, P_j, c)[0][1])
    c, h = 0.4, 1e-6
    fd = (f(c + h) - f(c - h)) / (2 * h)
    assert_allclose(jax.grad(f)(c), fd, rtol=1e-8, atol=1e-10)
    cs = jnp.linspace(0, 1, 5)
    batched = jax.vmap(lambda c: oj.encounter(P_i, P_j, c)[0])(cs)
    assert_allclose(batched, oj.encounter(P_i, P_j, cs)[0], rtol=0, atol=1e-15)


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="P_i and P_j"):
        oj.encounter(jnp.zeros(2), jnp.zeros(3), 0.1)
    with pytest.raises(ValueError, match="rho_i and rho_j"):
        oj.encounter_rho(jnp.zeros((2, 2)), jnp.zeros((3, 3)), 0.1)
    with pytest.raises(ValueError, match="c must be real"):
        oj.encounter(jnp.zeros(3), jnp.zeros(3), 0.1j)


def test_vacuum_rotation_is_right_handed_and_exact():
    rng = np.random.default_rng(8)
    B = rng.normal(size=3)
    B /= np.linalg.norm(B)
    P = random_bloch(rng, 10)
    angle = 0.83
    rotated = oj.vacuum_rotation(jnp.asarray(P), angle, jnp.asarray(B))
    U = ref.rotation(B, angle)
    for k in range(10):
        assert_allclose(rotated[k], ref.bloch(U @ ref.rho(P[k]) @ U.conj().T), rtol=0, atol=1e-14)
    # dP/dt = omega B x P at small angle.
    eps = 1e-7
    small = oj.vacuum_rotation(jnp.asarray(P), eps, jnp.asarray(B))
    assert_allclose((small - P) / eps, np.cross(B, P), rtol=0, atol=1e-6)
    assert_allclose(oj.vacuum_rotation(jnp.asarray(P), 0.0, jnp.asarray(B)), P, rtol=0, atol=0)


def dense_pair_unitary(c, phase_i, phase_j, B, t_int=0.7):
    """exp(-i t_int H) by eigendecomposition of the 4x4 Hermitian H (independent of the code)."""
    Bs = np.einsum("a,aij->ij", B, ref.SIGMA)
    H = (phase_i / t_int / 2) * np.kron(Bs, np.eye(2)) + (phase_j / t_int / 2) * np.kron(
        np.eye(2), Bs
    )
    H = H + (c / t_int) * ref.SWAP
    E, V = np.linalg.eigh(H)
    return V @ np.diag(np.exp(-1j * t_int * E)) @ V.conj().T


@pytest.mark.parametrize(
    "c,phase_i,phase_j", [(0.4, 0.9, -0.3), (1.7, 0.2, 0.2), (0.0, 1.1, 0.5), (0.3, 0.0, 0.0)]
)
def test_encounter_with_vacuum_against_dense_exponential(c, phase_i, phase_j):
    rng = np.random.default_rng(9)
    B = rng.normal(size=3)
    B /= np.linalg.norm(B)
    U = dense_pair_unitary(c, phase_i, phase_j, B)
    assert_allclose(oj.pair_unitary(c, phase_i, phase_j, jnp.asarray(B)), U, rtol=0, atol=1e-14)
    P_i, P_j = random_bloch(rng, 1)[0], random_bloch(rng, 1)[0]
    new_i, new_j = oj.encounter_vacuum(
        jnp.asarray(P_i), jnp.asarray(P_j), c, phase_i=phase_i, phase_j=phase_j, B=jnp.asarray(B)
    )
    pair = U @ np.kron(ref.rho(P_i), ref.rho(P_j)) @ U.conj().T
    tr_i, tr_j = ref.partial_traces(pair)
    assert_allclose(new_i, ref.bloch(tr_i), rtol=0, atol=1e-14)
    assert_allclose(new_j, ref.bloch(tr_j), rtol=0, atol=1e-14)


def test_pair_unitary_against_expm():
    """The closed form against `jax.scipy.linalg.expm` of the 4x4 Hamiltonian, batched."""
    from jax.scipy.linalg import expm

    rng = np.random.default_rng(12)
    B = rng.normal(size=3)
    B /= np.linalg.norm(B)
    t_int = 0.37
    Bs = jnp.einsum("a,aij->ij", jnp.asarray(B, jnp.complex128), oj.pauli(jnp.complex128))
    eye = jnp.eye(2, dtype=jnp.complex128)
    for c, w_i, w_j in rng.uniform(-3, 3, size=(6, 3)).tolist():
        H = (w_i / 2) * jnp.kron(Bs, eye) + (w_j / 2) * jnp.kron(eye, Bs)
        H = H + (c / t_int) * oj.swap_matrix(jnp.complex128)
        expected = expm(-1j * t_int * H)
        actual = oj.pair_unitary(c, w_i * t_int, w_j * t_int, jnp.asarray(B))
        assert_allclose(actual, expected, rtol=0, atol=1e-13)


def test_encounter_with_vacuum_limits():
    rng = np.random.default_rng(10)
    B = jnp.asarray([0.6, 0.0, -0.8])
    P_i, P_j = jnp.asarray(random_bloch(rng, 6)), jnp.asarray(random_bloch(rng, 6))
    c = jnp.asarray(rng.uniform(0, 2, 6))
    no_vacuum = oj.encounter_vacuum(P_i, P_j, c, phase_i=0.0, phase_j=0.0, B=B)
    plain = oj.encounter(P_i, P_j, c)
    assert_allclose(no_vacuum[0], plain[0], rtol=0, atol=1e-14)
    assert_allclose(no_vacuum[1], plain[1], rtol=0, atol=1e-14)
    no_swap = oj.encounter_vacuum(P_i, P_j, 0.0, phase_i=0.8, phase_j=-0.4, B=B)
    assert_allclose(no_swap[0], oj.vacuum_rotation(P_i, 0.8, B), rtol=0, atol=1e-14)
    assert_allclose(no_swap[1], oj.vacuum_rotation(P_j, -0.4, B), rtol=0, atol=1e-14)
    # B.(P_i + P_j) (lepton number) is conserved by vacuum + interaction together.
    full = oj.encounter_vacuum(P_i, P_j, c, phase_i=0.8, phase_j=-0.4, B=B)
    assert_allclose((full[0] + full[1]) @ B, (P_i + P_j) @ B, rtol=0, atol=1e-14)


class NoEncounter(oj.AbstractEncounter):
    """An encounter that changes nothing, `H_pair = 0`, written only here: every model must then
    evolve each particle by its one-body field alone. A model that computed the SWAP itself, and
    not through `System.encounter`, fails these tests."""

    antisymmetric = True

    def coefficients(self, c):
        return (0 * c,)

    def mixed_coefficients(self, c, coefficients, anti, n):
        return coefficients, 0 * c

    def change(self, Pa, Pb, coefficients, n, mixed=None):
        return tuple(coefficients[0] * a for a in Pa)

    def bloch(self, P_i, P_j, c):
        return P_i, P_j

    def bloch_antineutrino(self, P, Pbar, c):
        return P, Pbar

    def with_vacuum(self, P_i, P_j, c, *, phase_i, phase_j, B):
        return oj.vacuum_rotation(P_i, phase_i, B), oj.vacuum_rotation(P_j, phase_j, B)

    def on_state_vector(self, psi, i, j, c):
        return psi

    def isotropic_rates(self, gamma, mu):
        return 0 * mu, 0 * mu

    def forward_field(self, partners):
        return 0 * partners

    def collision_change(self, s, sign, weight, partners, other, n):
        return 0 * s


_B = np.asarray(oj.mixing_vector(0.4))
_P0 = np.asarray([[0.0, 0.0, 1.0], [0.6, 0.0, -0.8]])
_OMEGAS = np.asarray([0.3, 0.7])


def _vacuum(P0, omegas, ts):
    """Each group precessing about its vacuum field alone: `(T, G, 3)`."""
    return np.stack([[np.asarray(oj.vacuum_rotation(jnp.asarray(p), w * t, _B)) for p, w in
                      zip(P0, omegas, strict=True)] for t in ts])  # fmt: skip


@pytest.mark.long  # every model compiled twice: CI's long step
@pytest.mark.parametrize("schedule", ["stochastic", "inside"])
def test_every_encounter_model_applies_the_systems_encounter(schedule):
    """A gas, a foreground neutrino and the many-body engine with `NoEncounter`: the vacuum's
    closed form, while the SWAP at the same parameters moves the states by more than 0.05."""
    inside = schedule == "inside"
    schedule = {
        "stochastic": oj.Stochastic(dt=0.05),
        "deterministic": oj.Deterministic(),
        "inside": oj.Deterministic(vacuum="inside"),
    }[schedule]
    sampling = oj.Sampling(jax.random.key(4), n_steps=40, n_realizations=2, dtype=jnp.float64)
    saveat = oj.SaveAt(every=10)
    gas = oj.Gas((4, 4), jnp.asarray(_OMEGAS), jnp.asarray(_P0))
    moved = []
    for meet in (NoEncounter(), oj.Swap()):
        system = oj.System(gamma=0.2, mu=1.0, B=jnp.asarray(_B), encounter=meet)
        sol = oj.simulate_gas(gas, system, schedule, sampling, saveat=saveat)
        expected = _vacuum(_P0, _OMEGAS, np.asarray(sol.ts))
        moved.append(np.max(np.abs(np.asarray(sol.group_mean) - expected)))
        fg = oj.simulate_foreground(
            jnp.asarray(_P0[0]), jnp.asarray(_P0[1]), system, schedule, sampling, omega=0.3,
            saveat=saveat,
        )  # fmt: skip
        fg_expected = _vacuum(_P0[:1], _OMEGAS[:1], np.asarray(fg.ts))[:, 0]
        moved.append(np.max(np.abs(np.asarray(fg.mean) - fg_expected)))
        if not inside:  # the many-body engine applies the vacuum between the encounters
            mb = oj.simulate_manybody(gas, system, schedule, sampling, saveat=saveat)
            groups = np.asarray(mb.exact).reshape(2, -1, 2, 4, 3).mean(axis=3)
            mb_expected = _vacuum(_P0, _OMEGAS, np.asarray(mb.ts))
            moved.append(np.max(np.abs(groups - mb_expected[None])))
    n = len(moved) // 2
    assert max(moved[:n]) < 1e-12, moved[:n]
    assert min(moved[n:]) > 0.05, moved[n:]


@pytest.mark.long  # every model compiled twice: CI's long step
@pytest.mark.parametrize("collision", ["stochastic", "deterministic"])
def test_every_mean_field_applies_the_systems_encounter(collision):
    """`GroupField`, `MultiAngleField` and `ForegroundField` with `NoEncounter`: the vacuum's
    precession, to the solver's tolerance; with the SWAP, off by more than 0.05. Both collision
    terms carry the forward field (first order) and the collision term (second order);
    "deterministic" adds the finite step's term, made of the forward field."""
    ts = np.linspace(0.0, 3.0, 4)
    velocities = np.asarray([[0.0, 0.0, 1.0], [0.0, 0.6, 0.8]])
    moved = []
    for meet in (NoEncounter(), oj.Swap()):
        system = oj.System(gamma=0.3, mu=1.0, B=jnp.asarray(_B), encounter=meet)
        expected = _vacuum(_P0, _OMEGAS, ts)
        fields = [
            oj.GroupField(jnp.asarray([0.5, 0.5]), jnp.asarray(_OMEGAS), system, collision),
            oj.MultiAngleField(jnp.asarray(_OMEGAS), jnp.asarray(velocities), system, collision),
        ]
        for field in fields:
            sol = oj.solve_meanfield(field, jnp.asarray(_P0), jnp.asarray(ts))
            moved.append(np.max(np.abs(np.asarray(sol.P) - expected)))
        if collision != "deterministic":
            field = oj.ForegroundField(jnp.asarray(_P0[1]), 0.3, system, collision)
            sol = oj.solve_meanfield(field, jnp.asarray(_P0[0]), jnp.asarray(ts))
            moved.append(np.max(np.abs(np.asarray(sol.P) - expected[:, 0])))
    n = len(moved) // 2
    assert max(moved[:n]) < 1e-7, moved[:n]
    assert min(moved[n:]) > 0.05, moved[n:]


def test_encounter_option():
    """The encounter by name, by instance, refused otherwise (naming the option), and part of
    the checkpoint fingerprint."""
    assert isinstance(oj.System(gamma=0.1).bind([0.1]).encounter, oj.Swap)
    assert isinstance(oj.System(gamma=0.1, encounter="swap").bind([0.1]).encounter, oj.Swap)
    assert isinstance(oj.System(gamma=0.1, encounter=NoEncounter()).bind([0.1]).encounter,
                      NoEncounter)  # fmt: skip
    with pytest.raises(ValueError, match=r"encounter='heisenberg' is not a known option.*'swap'"):
        oj.System(gamma=0.1, encounter="heisenberg")
