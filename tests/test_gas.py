import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj
from oile_jax._gas.kernel import GasKernel, Slots

from . import reference as ref
from .conftest import (
    assert_allclose,
    assert_same_to_rounding,
    interrupt_after_checkpoints,
    run_options,
)

# Every physics test runs on both engines: the sharded one with one shard pairs uniformly, like
# the dense one, so the same references hold (several shards: test_sharded_gas.py and the
# mean-field test below).
ENGINES = {"dense": {}, "sharded": {"sharding": oj.Sharding(shards=1)}}


@pytest.fixture(params=list(ENGINES))
def engine(request):
    return ENGINES[request.param]


TWO_GROUPS = oj.Gas((4, 4), (0.3, -0.5), [[0.6, 0.0, 0.7], [-0.2, 0.5, -0.6]])


@pytest.mark.parametrize("angles", ["isotropic", "fixed-velocities"])
def test_against_numpy_loop(engine, key, angles):
    """N = 8, stochastic schedule with vacuum (flavour basis): group means after 30 steps from
    500 JAX realizations and 300 NumPy-loop realizations agree within 4 combined standard errors."""
    B = np.asarray(oj.mixing_vector(0.4, "flavour"))
    kw = dict(gamma=0.3, mu=1.2, dt=0.1)
    sol = oj.simulate_gas(
        TWO_GROUPS,
        **engine,
        system=oj.System(gamma=kw["gamma"], mu=kw["mu"], B=B, angles=angles),
        schedule=oj.Stochastic(dt=kw["dt"]),
        sampling=oj.Sampling(key=key, n_steps=30, n_realizations=500),
        saveat=oj.SaveAt(every=30),
    )
    rng = np.random.default_rng(21)
    P0 = np.asarray(TWO_GROUPS.initial_state(jnp.float64))
    omegas = np.repeat(np.asarray(TWO_GROUPS.omegas), TWO_GROUPS.counts)
    runs = np.stack(
        [ref.gas_run(P0, omegas, B=B, n_steps=30, rng=rng, angles=angles, **kw) for _ in range(300)]
    )
    ref_groups = np.stack([runs[:, :4].mean(1), runs[:, 4:].mean(1)], axis=1)  # (R, G, 3)
    jax_groups = sol.group_mean[:, -1]
    se = np.sqrt(jax_groups.var(0, ddof=1) / 500 + ref_groups.var(0, ddof=1) / 300)
    assert np.all(np.abs(jax_groups.mean(0) - ref_groups.mean(0)) < 4 * se)
    # The runs have moved far from the start: the comparison has teeth.
    assert np.max(np.abs(ref_groups.mean(0) - np.asarray(TWO_GROUPS.P0))) > 10 * se.max()


@pytest.mark.parametrize("schedule", ["deterministic", "stochastic"])
def test_equal_opposite_groups_decay_with_the_finite_n_factor(engine, key, schedule):
    """Pure +z and -z groups of 5 each, no vacuum: everything stays along z, z_i' = cos^2 c z_i
    + sin^2 c z_j, and since sum_j z_j = 0 and the partner is uniform over the N - 1 others,
    E[zbar_+] decays by (<cos^2 c> - <sin^2 c>/(N-1)) per round (deterministic) or by
    1 - p <sin^2 c> N/(N-1) per step (stochastic). The test also rejects the factor without the
    finite-N correction, i.e. it sees that nobody meets himself."""
    gas = oj.Gas((5, 5), (0.0, 0.0), [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    gamma, n, N = 0.5, 6, 10
    cos2, sin2, _ = (float(v) for v in oj.encounter_averages(gamma))
    if schedule == "deterministic":
        sched, steps, p = oj.Deterministic(), n, 1.0
        factor, naive = cos2 - sin2 / (N - 1), cos2
    else:
        sched, steps, p = oj.Stochastic(dt=0.25), 2 * n, 0.5
        factor, naive = 1 - p * sin2 * N / (N - 1), 1 - p * sin2
    sol = oj.simulate_gas(
        gas,
        **engine,
        system=oj.System(gamma=gamma),
        schedule=sched,
        sampling=oj.Sampling(key=key, n_steps=steps, n_realizations=4000),
        saveat=oj.SaveAt(every=steps),
    )
    z = sol.group_mean[:, -1, 0, 2]
    se = z.std(ddof=1) / np.sqrt(len(z))
    assert abs(z.mean() - factor**steps) < 4 * se, (z.mean(), factor**steps, se)
    assert abs(z.mean() - naive**steps) > 4 * se
    assert_allclose(sol.group_mean[:, -1, :, :2], 0.0, rtol=0, atol=1e-15)
    # Encounters: every pair every round, or Binomial(N/2, p) per step.
    mean_enc = sol.encounters[:, -1].mean()
    expected = N / 2 * steps * p
    assert abs(mean_enc - expected) <= 4 * np.sqrt(N / 2 * steps * p * (1 - p) / 4000) + 1e-12


def test_conservation_float64(engine, key):
    """Every encounter conserves sum_i P_i; with vacuum, B . sum_i P_i (lepton number)."""
    rng = np.random.default_rng(2)
    v = rng.normal(size=(200, 3))
    P0 = v / np.linalg.norm(v, axis=-1, keepdims=True) * rng.uniform(0.2, 1, (200, 1))
    gas = oj.Gas((100, 100), (0.0, 0.0), P0)
    sol = oj.simulate_gas(
        gas,
        **engine,
        system=oj.System(gamma=0.7),
        schedule=oj.Stochastic(dt=0.5),
        sampling=oj.Sampling(key=key, n_steps=2000, n_realizations=2),
        saveat=oj.SaveAt(every=500),
    )
    assert sol.encounters[0, -1] > 1e5
    assert_allclose(sol.total, np.broadcast_to(P0.sum(0), sol.total.shape), rtol=0, atol=1e-12)
    B = oj.mixing_vector(0.3, "flavour")
    gas = oj.Gas((100, 100), (0.4, -1.3), P0)
    sol = oj.simulate_gas(
        gas,
        **engine,
        system=oj.System(gamma=0.7, B=B),
        schedule=oj.Stochastic(dt=0.5),
        sampling=oj.Sampling(key=key, n_steps=2000, n_realizations=2),
        saveat=oj.SaveAt(every=500),
    )
    lepton0 = float(P0.sum(0) @ np.asarray(B))
    assert np.max(np.abs(sol.lepton - lepton0)) < 1e-12 * np.abs(P0).sum()
    assert np.max(np.abs(sol.total - P0.sum(0))) > 1e-3  # the total itself precesses


def lepton_drift(N, steps, dtype, key, engine=None):
    """The poster's two groups (60% / 40%): lepton number B . sum P = -0.2 N."""
    gas = oj.Gas(
        (6 * N // 10, 4 * N // 10),
        (0.1, 0.2),
        [[1e-3, 0, np.sqrt(1 - 1e-6)], [-1e-3, 0, -np.sqrt(1 - 1e-6)]],
    )
    sol = oj.simulate_gas(
        gas,
        **engine or {},
        system=oj.System(gamma=0.01, angles="fixed-velocities"),
        schedule=oj.Stochastic(dt=0.01),
        sampling=oj.Sampling(key=key, n_steps=steps, n_realizations=1, dtype=dtype),
        saveat=oj.SaveAt(every=steps // 4),
    )
    lepton = sol.lepton[0].astype(np.float64)
    return sol.encounters[0, -1], np.max(np.abs(lepton - lepton[0])) / abs(lepton[0])


def test_lepton_number_float32_1e7(engine, key):
    encounters, drift = lepton_drift(10_000, 2000, jnp.float32, key, engine)
    assert encounters == 10**7
    assert drift < 1e-5, drift


def test_lepton_number_float32_vacuum_inside(engine, key):
    """The deterministic schedule with vacuum inside the encounters (4x4 complex products) in the
    flavour basis: float32 keeps the lepton number to 1e-5 over 400 rounds (2e6 encounters).
    Without restoring B.(P_i + P_j) after the products the drift was 2.6e-5 here."""
    up, down = [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]
    gas = oj.Gas((3000, 3000, 2000, 2000), (-0.2, -0.1, 0.1, 0.2), [up, up, down, down])
    sol = oj.simulate_gas(
        gas,
        **engine,
        system=oj.System(gamma=0.05, B=oj.mixing_vector(0.1, "flavour")),
        schedule=oj.Deterministic(vacuum="inside"),
        sampling=oj.Sampling(key=key, n_steps=400, dtype=jnp.float32),
        saveat=oj.SaveAt(every=100),
    )
    lepton = sol.lepton[0].astype(np.float64)
    assert sol.encounters[0, -1] == 2 * 10**6
    assert np.max(np.abs(lepton - lepton[0])) / abs(lepton[0]) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("dtype,bound", [(jnp.float32, 1e-5), (jnp.float64, 1e-12)])
def test_lepton_number_1e8(key, dtype, bound):
    encounters, drift = lepton_drift(100_000, 2000, dtype, key)
    assert encounters == 10**8
    assert drift < bound, drift


@pytest.mark.parametrize(
    "engine", [{}, {"shards": 1}, {"shards": 4}], ids=["dense", "sharded", "4-shards"]
)
@pytest.mark.long  # 24 s over its cases: make test-long, in CI
def test_small_gamma_follows_the_multi_angle_mean_field(engine, key):
    """Fixed velocities, N = 64, two groups with vacuum, stochastic with p = 1 (dt = gamma):
    at mu t = 1 the rms distance of the neutrinos from the multi-angle mean field
    dP_i/dt = [omega_i B + mu/(N-1) sum_j (1 - v_i.v_j) P_j] x P_i (NumPy RK4 here) shrinks like
    gamma^(1/2), the random-partner noise. One compiled run serves all gammas."""
    N = 64
    gas = oj.Gas((32, 32), (0.4, -0.6), [[0.5, 0.0, 0.8], [0.3, -0.4, -0.7]])
    B = np.asarray(oj.mixing_vector(0.2, "flavour"))
    gammas = np.asarray([4e-3, 1e-3, 2.5e-4])
    distances = []
    for gamma in gammas:
        sol = oj.simulate_gas(
            gas,
            **run_options(
                **engine,
                gamma=gamma,
                B=B,
                schedule=oj.Stochastic(dt=gamma),
                key=key,
                angles="fixed-velocities",
                n_steps=4000,
                save_every=250,
                n_realizations=4,
                save_state=True,
            ),
        )
        index = round(1.0 / gamma / 250)
        assert sol.ts[index] == pytest.approx(1.0, rel=1e-9)
        rms = []
        for r in range(4):
            v = sol.velocities[r]
            w = np.repeat(np.asarray(gas.omegas), gas.counts)
            K = (1 - v @ v.T) / (N - 1)
            np.fill_diagonal(K, 0)

            def rhs(P, w=w, K=K):
                return np.cross(w[:, None] * B + K @ P, P)

            P = np.asarray(gas.initial_state(jnp.float64))
            h = 1e-3
            for _ in range(1000):
                k1 = rhs(P)
                k2 = rhs(P + h / 2 * k1)
                k3 = rhs(P + h / 2 * k2)
                k4 = rhs(P + h * k3)
                P = P + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            rms.append(np.sqrt(np.mean(np.sum((sol.state[r, index] - P) ** 2, axis=-1))))
        distances.append(np.mean(rms))
    order = np.polyfit(np.log(gammas), np.log(distances), 1)[0]
    assert 0.35 < order < 0.65, (order, distances)
    assert distances[-1] < 0.05


def test_observables_against_numpy(engine, key):
    gas = oj.Gas(
        (6, 10, 4),
        (0.1, 0.2, 0.3),
        np.tile([[0.3, 0.1, 0.8]], (20, 1)) * np.linspace(0.3, 1, 20)[:, None],
    )
    sol = oj.simulate_gas(
        gas,
        **engine,
        system=oj.System(gamma=0.2),
        schedule=oj.Stochastic(dt=0.1),
        sampling=oj.Sampling(key=key, n_steps=20, n_realizations=3),
        saveat=oj.SaveAt(every=5, state=True),
    )
    assert sol.state.shape == (3, 5, 20, 3) and sol.group_mean.shape == (3, 5, 3, 3)
    bounds = np.cumsum((0,) + gas.counts)
    for g in range(3):
        members = sol.state[:, :, bounds[g] : bounds[g + 1]]
        assert_allclose(sol.group_mean[:, :, g], members.mean(2), rtol=0, atol=1e-14)
        assert_allclose(sol.group_std[:, :, g], members.std(2), rtol=0, atol=1e-12)
        assert_allclose(
            sol.group_length[:, :, g], np.linalg.norm(members, axis=-1).mean(2), rtol=0, atol=1e-14
        )
        r = np.linalg.norm(members, axis=-1)
        lam = np.stack([(1 + r) / 2, (1 - r) / 2])
        S = -np.sum(np.where(lam > 0, lam * np.log(np.where(lam > 0, lam, 1)), 0), axis=0)
        assert_allclose(sol.group_entropy[:, :, g], S.mean(2), rtol=0, atol=1e-13)
    assert_allclose(sol.total, sol.state.sum(2), rtol=0, atol=1e-13)
    assert_allclose(sol.lepton, sol.state.sum(2) @ np.array([0, 0, -1.0]), rtol=0, atol=1e-13)
    assert_allclose(sol.final_state, sol.state[:, -1], rtol=0, atol=0)
    assert_allclose(sol.ts, 0.5 * np.arange(5), rtol=1e-14, atol=0)


@pytest.mark.long  # 14 s: make test-long, in CI
def test_reproducible_ensembles_and_chunking(key):
    kw = dict(
        gamma=0.2,
        schedule=oj.Stochastic(dt=0.1),
        key=key,
        angles="fixed-velocities",
        n_steps=12,
        save_every=3,
    )
    a = oj.simulate_gas(TWO_GROUPS, **run_options(n_realizations=2, **kw))
    b = oj.simulate_gas(TWO_GROUPS, **run_options(n_realizations=3, chunk_saves=1, **kw))
    # Other programs (3 realizations, chunks of one save): the same stream, equal to rounding.
    assert_same_to_rounding(a.group_mean, b.group_mean[:2])
    assert_same_to_rounding(a.encounters, b.encounters[:2])
    assert_same_to_rounding(a.velocities, b.velocities[:2])
    assert not np.allclose(b.group_mean[1, -1], b.group_mean[2, -1])


def test_checkpoint_and_exact_resume(key, tmp_path, monkeypatch):
    """With save_state: the saved states are kept apart from the state to resume from (they
    once shared a name in the checkpoint, and resuming read the series as the state)."""
    kw = dict(
        gamma=0.2,
        schedule=oj.Stochastic(dt=0.1),
        key=key,
        n_steps=20,
        save_every=4,
        n_realizations=2,
        chunk_saves=1,
        save_state=True,
    )
    full = oj.simulate_gas(TWO_GROUPS, **run_options(**kw))
    path = tmp_path / "run.ckpt.h5"
    restore = interrupt_after_checkpoints(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        oj.simulate_gas(TWO_GROUPS, **run_options(checkpoint=path, **kw))
    restore()
    data, _ = oj.read_h5(path)
    assert int(data["step"]) == 8
    with pytest.raises(FileExistsError, match="resume=True"):
        oj.simulate_gas(TWO_GROUPS, **run_options(checkpoint=path, **kw))
    with pytest.raises(ValueError, match="differs in gamma"):
        oj.simulate_gas(
            TWO_GROUPS, **run_options(checkpoint=path, resume=True, **{**kw, "gamma": 0.21})
        )
    resumed = oj.simulate_gas(TWO_GROUPS, **run_options(checkpoint=path, resume=True, **kw))
    # Resuming runs the very same compiled chunks on the saved state: exact on any machine.
    for name in (
        "group_mean",
        "group_std",
        "group_length",
        "group_entropy",
        "total",
        "lepton",
        "encounters",
        "final_state",
        "state",
        "ts",
    ):
        assert np.array_equal(getattr(resumed, name), getattr(full, name)), name


def test_checkpoint_of_another_format_is_refused(key, tmp_path):
    """A checkpoint written before the gas's random streams or state changed (no or another
    `format` in its fingerprint) would not resume exactly: refused, naming the format."""
    import json

    kw = dict(
        system=oj.System(gamma=0.2),
        schedule=oj.Stochastic(dt=0.1),
        sampling=oj.Sampling(key=key, n_steps=8),
        saveat=oj.SaveAt(every=4),
    )
    path = tmp_path / "old.ckpt.h5"
    oj.simulate_gas(TWO_GROUPS, **kw, checkpoint=oj.Checkpoint(path))
    data, attrs = oj.read_h5(path)
    fingerprint = json.loads(attrs["fingerprint"])
    del fingerprint["format"]
    attrs = {**attrs, "fingerprint": json.dumps(fingerprint, sort_keys=True)}
    oj.write_h5(path, data, attrs=attrs, force=True)
    with pytest.raises(ValueError, match="written by another version.*delete it"):
        oj.simulate_gas(TWO_GROUPS, **kw, checkpoint=oj.Checkpoint(path, resume=True))


def _interrupted(path, monkeypatch, gas=TWO_GROUPS, **kw):
    restore = interrupt_after_checkpoints(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        oj.simulate_gas(gas, **run_options(checkpoint=path, chunk_saves=1, **kw))
    restore()


@pytest.mark.parametrize(
    "change,differs",
    [
        # Values a repr() shows as f32[] or f32[2,3]: the fingerprint holds their hashes.
        (dict(angles=oj.FixedAngle(1.0)), "angles.theta"),
        (dict(schedule=oj.Stochastic(dt=0.11)), "schedule.dt"),
        (dict(schedule=oj.Deterministic()), "schedule.dt, schedule.kind, schedule.vacuum"),
        (dict(angles=oj.Beams([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])), "angles.directions"),
        (dict(matter=oj.Exponential(1.0, 2.0)), "matter.scale"),
        (dict(B=oj.mixing_vector(0.31)), "B"),
        # Every number is then rounded to float32: the message names them with dtype.
        (
            dict(dtype=jnp.float32),
            "B, L, P0, dtype, gamma, matter.scale, matter.value, omegas, schedule.dt",
        ),
    ],
)
def test_a_checkpoint_resumes_only_its_own_run(key, tmp_path, monkeypatch, change, differs):
    """A checkpoint identifies its run by the values that shape it: a changed angle, step,
    direction, profile or vector at the same number of steps is refused, naming it."""
    kw = dict(
        gamma=0.2,
        schedule=oj.Stochastic(dt=0.1),
        key=key,
        n_steps=8,
        save_every=4,
        angles=oj.FixedAngle(0.9),
        matter=oj.Exponential(1.0, 3.0),
        B=oj.mixing_vector(0.3),
        L=oj.nu_e("mass", 0.3),
    )
    if "directions" in differs:
        kw["angles"] = oj.Beams([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    path = tmp_path / "run.ckpt.h5"
    _interrupted(path, monkeypatch, **kw)
    with pytest.raises(ValueError, match=f"differs in {differs}$"):
        oj.simulate_gas(
            TWO_GROUPS,
            **run_options(checkpoint=path, resume=True, chunk_saves=1, **{**kw, **change}),
        )
    # The unchanged run resumes.
    oj.simulate_gas(TWO_GROUPS, **run_options(checkpoint=path, resume=True, chunk_saves=1, **kw))


def test_a_damaged_checkpoint_is_refused(key, tmp_path, monkeypatch):
    """64 bytes overwritten inside the stored state: the checksum refuses it, naming the
    file, where it would have resumed into NaN."""
    import h5py

    kw = dict(gamma=0.2, schedule=oj.Stochastic(dt=0.1), key=key, n_steps=8, save_every=4)
    path = tmp_path / "run.ckpt.h5"
    _interrupted(path, monkeypatch, **kw)
    with h5py.File(path, "r") as file:
        offset = file["state"].id.get_offset()
    data = bytearray(path.read_bytes())
    data[offset + 8 : offset + 72] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"checkpoint='{path}' is damaged"):
        oj.simulate_gas(
            TWO_GROUPS, **run_options(checkpoint=path, resume=True, chunk_saves=1, **kw)
        )


def test_changing_parameters_does_not_recompile(key, monkeypatch):
    traces = []
    original = GasKernel.step

    def counting(self, *args):
        traces.append(1)
        return original(self, *args)

    monkeypatch.setattr(GasKernel, "step", counting)
    kw = dict(key=key, n_steps=6, save_every=3, n_realizations=2, angles="fixed-velocities")
    oj.simulate_gas(TWO_GROUPS, **run_options(gamma=0.2, schedule=oj.Stochastic(dt=0.1), **kw))
    start = len(traces)
    other = oj.Gas((4, 4), (1.3, 0.1), [[0.0, 0.0, 1.0], [0.1, 0.2, 0.3]])
    oj.simulate_gas(
        other,
        **run_options(
            gamma=0.5, mu=2.0, B=oj.mixing_vector(0.1), schedule=oj.Stochastic(dt=0.05), **kw
        ),
    )
    assert len(traces) == start
    oj.simulate_gas(TWO_GROUPS, **run_options(gamma=0.2, schedule=oj.Deterministic(), **kw))
    assert len(traces) > start  # a new schedule type is a new static structure


@pytest.mark.long  # 16 s and more over its cases: make test-long, in CI
@pytest.mark.parametrize("vacuum", ["split", "inside"])
def test_deterministic_vacuum_options_agree_at_small_step(engine, key, vacuum):
    """Both vacuum options conserve lepton number and agree to O(gamma) with each other."""
    B = oj.mixing_vector(0.3, "flavour")
    kw = dict(
        system=oj.System(gamma=0.02, B=B, angles="fixed-angle"),
        sampling=oj.Sampling(key=key, n_steps=50, n_realizations=2),
        saveat=oj.SaveAt(every=50),
    )
    sol = oj.simulate_gas(TWO_GROUPS, **engine, schedule=oj.Deterministic(vacuum=vacuum), **kw)
    other = oj.simulate_gas(
        TWO_GROUPS,
        **engine,
        schedule=oj.Deterministic(vacuum="inside" if vacuum == "split" else "split"),
        **kw,
    )
    assert np.max(np.abs(sol.lepton - sol.lepton[:, :1])) < 1e-12
    assert np.max(np.abs(sol.final_state - other.final_state)) < 0.02
    assert (
        np.max(np.abs(sol.final_state - np.asarray(TWO_GROUPS.initial_state(jnp.float64)))) > 0.05
    )


BAD = [
    (lambda: oj.Gas((3, 4), (0.1, 0.2), [[0, 0, 1.0], [0, 0, -1.0]]), "N = 7 .* needs N even"),
    (lambda: oj.Gas((4, 4), (0.1,), [[0, 0, 1.0], [0, 0, -1.0]]), "omegas must have shape"),
    (lambda: oj.Gas((4, 4), (0.1, 0.2), [[0, 0, 1.0]]), "P0 must have shape"),
    (lambda: oj.Gas((4, -4), (0.1, 0.2), [[0, 0, 1.0], [0, 0, -1.0]]), "counts must be positive"),
]


@pytest.mark.parametrize("make,message", BAD)
def test_bad_gas(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(gas=oj.Gas((4, 4), (0.1, 0.2), [[0, 0.8, 0.8], [0, 0, -1.0]])), "P0 is unphysical"),
        (
            dict(gas=oj.Gas((4, 4), (np.nan, 0.2), [[0, 0, 1.0], [0, 0, -1.0]])),
            "omegas contains NaN",
        ),
        (dict(gamma=-0.1), "gamma must be > 0"),
        (dict(schedule=oj.Stochastic(dt=0.5)), "dt is too large for gamma"),
        (dict(angles="sideways"), "angles='sideways'"),
        (dict(save_every=3), "n_steps=4 must be a multiple of the save interval SaveAt.every=3"),
        (dict(dtype=jnp.int32), "dtype must be float32 or float64"),
        (dict(gas="two groups"), "gas must be a Gas"),
    ],
)
def test_bad_input_names_the_argument(key, change, message):
    kw = dict(gas=TWO_GROUPS, gamma=0.1, schedule=oj.Stochastic(dt=0.05), key=key, n_steps=4)
    kw.update(change)
    with pytest.raises(ValueError, match=message):
        oj.simulate_gas(kw.pop("gas"), **run_options(**kw))


def test_legacy_and_typed_keys_give_the_same_numbers():
    kw = dict(gamma=0.2, schedule=oj.Stochastic(dt=0.1), n_steps=4, save_every=2, n_realizations=2)
    typed = oj.simulate_gas(TWO_GROUPS, **run_options(key=jax.random.key(3), **kw))
    legacy = oj.simulate_gas(TWO_GROUPS, **run_options(key=jax.random.PRNGKey(3), **kw))
    assert_allclose(legacy.group_mean, typed.group_mean, rtol=0, atol=0)
    fg = dict(gamma=0.2, schedule=oj.Stochastic(dt=0.1), n_steps=4)
    assert_allclose(
        oj.simulate_foreground(
            [0.0, 0, 1], [1.0, 0, 0], **run_options(key=jax.random.PRNGKey(3), **fg)
        ).P,
        oj.simulate_foreground(
            [0.0, 0, 1], [1.0, 0, 0], **run_options(key=jax.random.key(3), **fg)
        ).P,
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("B", [(0.0, 0.0, 1.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0), "flavour"])
def test_carried_form_is_one_split_step(B):
    """The gas is carried in the frame of B, half a step of vacuum ahead (`GasKernel.enter`):
    `leave(encounters(enter(P)))` equals the split step `R E R` of the NumPy reference
    (partial traces of the 4x4 pair state, rotations about B by omega_g tau / 2), to 1e-13, for
    B along and against the axes and a flavour-basis B; `leave(enter(P))` returns P."""
    B = np.asarray(oj.mixing_vector(0.4, "flavour") if B == "flavour" else B)
    rng = np.random.default_rng(5)
    P = rng.normal(size=(8, 3))
    P *= rng.uniform(0.2, 1.0, size=(8, 1)) / np.linalg.norm(P, axis=-1, keepdims=True)
    c = rng.uniform(0, 0.8, size=4)
    omegas = np.asarray([0.3, -0.5])
    system = oj.System(
        omegas=jnp.asarray(omegas), gamma=jnp.asarray(0.2), mu=jnp.asarray(1.0),
        B=jnp.asarray(B), angles=oj.Isotropic(),
    )  # fmt: skip
    model = GasKernel((4, 4), system, oj.Stochastic(dt=0.15))
    slots = model.enter(Slots.start(jnp.asarray(P)))
    assert_allclose(model.in_gas_order(slots), P, rtol=0, atol=1e-15)
    out = np.asarray(model.in_gas_order(model.encounters(slots, jnp.asarray(c), True, t=0.0)))

    def half(i, p):  # half a step of vacuum for neutrino i
        U = ref.rotation(B, omegas[i // 4] * 0.15 / 2)
        return ref.bloch(U @ ref.rho(p) @ U.conj().T)

    Q = np.stack([half(i, P[i]) for i in range(8)])
    for k in range(4):  # slots (0, k) and (1, k) hold neutrinos k and k + 4
        Q[k], Q[k + 4] = ref.encounter(Q[k], Q[k + 4], c[k])
    assert_allclose(out, np.stack([half(i, Q[i]) for i in range(8)]), rtol=0, atol=1e-13)


def test_deterministic_round_lasts_gamma_over_mu(engine, key):
    """One pair, perpendicular velocities (x = 1), no vacuum: the pair meets every round with
    c = gamma. The mean field of two neutrinos precesses P_1 about the conserved S = P_1 + P_2 at
    the rate mu |S|; so after n rounds, at mu t = n gamma (a round lasts gamma / mu), the gas
    must stand where that closed-form precession puts it, up to O(gamma) (the collision term).
    A round of another length puts the saved times, or the angle turned, off by that factor."""
    gamma, mu, rounds = 2e-3, 0.5, 1500
    P1, P2 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    gas = oj.Gas((1, 1), (0.0, 0.0), [P1, P2])
    sol = oj.simulate_gas(
        gas,
        **engine,
        system=oj.System(gamma=gamma, mu=mu, angles="fixed-angle"),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(key=key, n_steps=rounds, dtype=jnp.float64),
        saveat=oj.SaveAt(every=rounds // 3),
    )
    assert_allclose(sol.ts, gamma / mu * np.arange(0, rounds + 1, rounds // 3), rtol=1e-12, atol=0)
    S = P1 + P2
    n = S / np.linalg.norm(S)
    for t, P in zip(sol.ts, sol.group_mean[0, :, 0], strict=True):
        angle = mu * np.linalg.norm(S) * t  # dP/dt = mu S x P: right-handed about S
        along = np.dot(P1, n) * n
        perp = P1 - along
        expected = along + np.cos(angle) * perp + np.sin(angle) * np.cross(n, perp)
        assert_allclose(P, expected, rtol=0, atol=5 * gamma * mu * t + 1e-12)
    # The test has teeth: the precession turned by more than a radian by the end.
    assert mu * np.linalg.norm(S) * sol.ts[-1] > 1.0


def test_fixed_velocities_meet_at_one_minus_v_dot_v(engine, key):
    """One pair with fixed velocities, no vacuum, deterministic schedule: the pair meets every
    round with `c = gamma x`, `x = 1 - v_1.v_2` of the velocities the run returns. The two-neutrino
    mean field then precesses P_1 about the conserved S = P_1 + P_2 at the rate `x mu |S|`, so
    the gas must stand where that closed form puts it, up to the O(gamma x^2) collision term.
    Four realizations draw four velocity pairs; the ones with x far from 1 (at least two are
    asserted) distinguish `1 - v.v` from `x = 1` and from `1 + v.v` (= 2 - x) by radians."""
    gamma, mu, rounds = 2e-3, 0.5, 1500
    P1, P2 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    sol = oj.simulate_gas(
        oj.Gas((1, 1), (0.0, 0.0), [P1, P2]),
        **engine,
        system=oj.System(gamma=gamma, mu=mu, angles="fixed-velocities"),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(key=key, n_steps=rounds, n_realizations=4, dtype=jnp.float64),
        saveat=oj.SaveAt(every=rounds // 3),
    )
    S = P1 + P2
    n = S / np.linalg.norm(S)
    along = np.dot(P1, n) * n
    perp = P1 - along
    far_from_one = 0
    for r in range(4):
        v = np.asarray(sol.velocities[r])
        assert_allclose(np.linalg.norm(v, axis=-1), 1.0, rtol=0, atol=1e-12)
        x = 1 - v[0] @ v[1]
        far_from_one += abs(x - 1) > 0.3
        for t, P in zip(sol.ts, sol.group_mean[r, :, 0], strict=True):
            angle = x * mu * np.linalg.norm(S) * t  # dP/dt = x mu S x P
            expected = along + np.cos(angle) * perp + np.sin(angle) * np.cross(n, perp)
            assert_allclose(P, expected, rtol=0, atol=5 * gamma * max(x, 1) ** 2 * mu * t + 1e-12)
    assert far_from_one >= 2
