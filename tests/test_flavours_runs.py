"""Three flavours through the gas's machinery (physics.md section 11): checkpoints and exact
resume (dense and sharded), sweeps, sharded conservation, the observables, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj

from .conftest import (
    assert_allclose,
    assert_same_to_rounding,
    interrupt_after_checkpoints,
    run_options,
)

E, MU, TAU = (oj.flavour_state(f, 3) for f in ("e", "mu", "tau"))
# A nu_e group, a nubar_e group and a nu_mu group, PMNS vacuum in the flavour basis and matter.
GAS = oj.Gas(
    (24, 16, 24), (0.4, 0.4, 0.9), jnp.stack([E, E, 0.8 * MU]), antineutrino=(False, True, False)
)
B = oj.pmns_vacuum("normal", "flavour")
NAMES = ("group_mean", "group_std", "group_entropy", "total", "encounters", "final_state")


@pytest.mark.parametrize("engine", [{}, {"shards": 2}], ids=["dense", "sharded"])
@pytest.mark.long  # 24 s over its cases: make test-long, in CI
def test_checkpoint_and_exact_resume(engine, tmp_path, monkeypatch):
    kw = dict(
        gamma=0.2, schedule=oj.Stochastic(dt=0.1), key=jax.random.key(4), n_steps=20,
        save_every=4, n_realizations=2, chunk_saves=1, B=B, matter=0.5, **engine,
    )  # fmt: skip
    full = oj.simulate_gas(GAS, **run_options(**kw))
    path = tmp_path / "run.ckpt.h5"
    restore = interrupt_after_checkpoints(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        oj.simulate_gas(GAS, **run_options(checkpoint=path, **kw))
    restore()
    data, _ = oj.read_h5(path)
    assert int(data["step"]) == 8
    assert data["state"].shape[-1] == 8
    resumed = oj.simulate_gas(GAS, **run_options(checkpoint=path, resume=True, **kw))
    # Resuming runs the very same compiled chunks on the saved state: exact on any machine.
    for name in NAMES:
        assert np.array_equal(getattr(resumed, name), getattr(full, name)), name
    assert full.final_state.shape == (2, GAS.n, 8)
    assert np.abs(full.group_mean[:, -1] - full.group_mean[:, 0]).max() > 0.05


@pytest.mark.long  # 15-20 s: make test-long and CI, to keep the default suite inside 10 minutes
def test_every_sweep_point_is_the_single_run():
    kw = dict(
        schedule=oj.Stochastic(dt=0.02),
        sampling=oj.Sampling(key=jax.random.key(2), n_steps=40, n_realizations=2),
        saveat=oj.SaveAt(every=10),
    )
    gammas = [0.05, 0.2]
    system = lambda gamma: oj.System(gamma=gamma, B=B, angles="fixed-velocities")
    sols = oj.sweep_gas(GAS, **kw, system=system(gammas))
    for gamma, sol in zip(gammas, sols, strict=True):
        single = oj.simulate_gas(GAS, **kw, system=system(gamma))
        for name in NAMES:
            # The sweep is another XLA program: the same encounters, the same numbers to rounding.
            assert_same_to_rounding(getattr(sol, name), getattr(single, name), f"{gamma} {name}")
    assert not np.allclose(sols[0].group_mean[:, -1], sols[1].group_mean[:, -1])


@pytest.mark.long  # 13-20 s: make test-long and CI, to keep the default suite inside 10 minutes
def test_sharded_conservation_and_observables():
    """Four shards, float64: every encounter conserves `sum_nu P - sum_nubar Pbar` (with matter
    alone and no vacuum mixing, the total is conserved and so are the flavour numbers); the
    saved group means, occupations and entropies are those of the final state."""
    sol = oj.simulate_gas(
        GAS,
        system=oj.System(
            gamma=0.3,
            B=oj.pmns_vacuum("normal", "flavour", theta12=0.0, theta13=0.0, theta23=0.0),
            matter=0.7,
            L=oj.flavour_axis(3),
        ),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(key=jax.random.key(1), n_steps=30, dtype=jnp.float64),
        saveat=oj.SaveAt(every=10),
        sharding=oj.Sharding(shards=4),
    )
    for series in (sol.total[0], sol.flavour_numbers[0]):
        assert_allclose(series - series[0], np.zeros(series.shape), rtol=0, atol=1e-12)
    final = np.asarray(sol.final_state[0])
    starts = np.cumsum((0,) + GAS.counts)
    for g in range(3):
        members = final[starts[g] : starts[g + 1]]
        assert_allclose(sol.group_mean[0, -1, g], members.mean(axis=0), rtol=0, atol=1e-13)
        occ = np.asarray(oj.occupations(jnp.asarray(members))).mean(axis=0)
        assert_allclose(sol.occupations[0, -1, g], occ, rtol=0, atol=1e-13)
        entropy = np.asarray(oj.von_neumann_entropy(jnp.asarray(members))).mean()
        assert_allclose(sol.group_entropy[0, -1, g], entropy, rtol=0, atol=1e-6)
    # The nu_e and nubar_e groups exchange flavour with the nu_mu group: something happened.
    assert np.abs(sol.occupations[0, -1, 0] - sol.occupations[0, 0, 0]).max() > 0.05


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(gas=lambda: oj.Gas((4, 4), (0.1, 0.2), np.zeros((2, 5)))), "P0 must have shape"),
        (
            dict(gas=lambda: oj.Gas((4, 4), (0.1, 0.2), jnp.stack([1.2 * E, MU]))),
            "P0 is unphysical",
        ),
        (dict(B=(0.0, 0.0, -1.0)), "B must be the vacuum vector .* of shape \\(\\.\\.\\., 8\\)"),
        (dict(ordering="inverted"), "pmns_vacuum\\('inverted'"),
        (dict(schedule=oj.Deterministic(vacuum="inside")), "two-flavour only"),
        (dict(matter=0.3, L=(0.0, 0.0, 1.0)), "L must have shape \\(\\.\\.\\., 8\\)"),
    ],
)
def test_bad_three_flavour_input_names_the_argument(change, message):
    kw = dict(gas=lambda: GAS, gamma=0.1, schedule=oj.Stochastic(dt=0.05), key=jax.random.key(0))
    kw.update(change)
    with pytest.raises(ValueError, match=message):
        oj.simulate_gas(kw.pop("gas")(), **run_options(n_steps=4, **kw))


def oile(*argv) -> int:
    from oile_jax._app import cli as _cli

    return _cli.main([str(a) for a in argv])


SMALL = ["--set", "gas.counts=[60, 40]", "--set", "run.t_max=20", "--set", "run.n_saves=5"]


@pytest.mark.long  # 13-20 s: make test-long and CI, to keep the default suite inside 10 minutes
def test_the_three_flavour_preset_is_the_library_run(tmp_path):
    """`oile run three-flavours` (small) writes what `simulate_gas` gives for the same gas,
    vacuum and schedule (another program: equal to rounding), with the occupations and flavour
    numbers; its figure is drawn."""
    from oile_jax._app import config as _config

    out = tmp_path / "tf.h5"
    assert oile("run", "three-flavours", "--out", out, *SMALL) == 0
    data, attrs = oj.read_h5(out)
    assert data["group_mean"].shape == (1, 5, 2, 8)
    assert data["occupations"].shape == (1, 5, 2, 3)
    assert data["flavour_numbers"].shape == (1, 5, 3)
    config = _config.resolve(_config.load("three-flavours")[0])
    assert config["gas"]["P0"] == [list(map(float, E)), list(map(float, MU))]
    gas = oj.Gas((60, 40), (0.1, 0.2), jnp.stack([E, MU]))
    sol = oj.simulate_gas(
        gas,
        system=oj.System(
            gamma=0.01, B=oj.pmns_vacuum("normal", "flavour", dtype=jnp.float32), angles="isotropic"
        ),
        schedule=oj.Stochastic(dt=0.01),
        sampling=oj.Sampling(key=jax.random.key(0), n_steps=2000, dtype=jnp.float32),
        saveat=oj.SaveAt(every=500),
    )
    for name in ("group_mean", "occupations", "group_entropy", "encounters"):
        assert_same_to_rounding(data[name], getattr(sol, name), name)
    assert oile("plot", out, "--out", tmp_path / "tf.png") == 0
    assert (tmp_path / "tf.png").stat().st_size > 20_000


@pytest.mark.long  # 12 s: make test-long, in CI
def test_a_three_flavour_mean_field_run_file(tmp_path):
    """A mean-field run file with three flavours, an antineutrino group and the inverted
    ordering: the run's group means are `GroupField`'s with `pmns_vacuum("inverted")`."""
    config = tmp_path / "mf.toml"
    config.write_text(
        'model = "meanfield"\nprecision = "float64"\n[physics]\nn_flavours = 3\n'
        'basis = "flavour"\nordering = "inverted"\ntheta23 = 0.7\n[run]\nt_max = 10.0\n'
        'n_saves = 6\n[gas]\ncounts = [30, 20]\nomegas = [0.3, 0.3]\nP0 = ["e", "e"]\n'
        "antineutrino = [false, true]\n"
    )
    out = tmp_path / "mf.h5"
    assert oile("run", config, "--out", out) == 0
    data, _ = oj.read_h5(out)
    B = oj.pmns_vacuum("inverted", "flavour", theta23=0.7)
    field = oj.GroupField(
        jnp.asarray([0.6, 0.4]),
        jnp.asarray([0.3, 0.3]),
        oj.System(gamma=jnp.asarray(0.0), mu=jnp.asarray(1.0), B=B),
        n=50,
        antineutrino=jnp.asarray([False, True]),
    )
    sol = oj.solve_meanfield(field, jnp.stack([E, E]), jnp.linspace(0.0, 10.0, 6))
    np.testing.assert_allclose(data["group_mean"], sol.P, rtol=0, atol=1e-9)
    assert_allclose(data["occupations"], oj.occupations(sol.P), rtol=0, atol=1e-9)
    assert np.abs(data["occupations"][-1] - data["occupations"][0]).max() > 0.05


@pytest.mark.parametrize(
    "setting, key, allowed",
    [
        ("physics.n_flavours=4", "physics.n_flavours", "2 or 3"),
        ("physics.theta=0.3", "physics.theta", "theta12, theta13"),
        ("gas.P0=[[0.0, 0.0, 1.0], 'mu']", "gas.P0", "takes 8"),
        ("gas.P0=['e', 'x']", "gas.P0", "'tau'"),
        ("physics.basis=mass", "gas.P0", "flavour-basis states"),
        ("physics.dm2_3l=-2.5e-3", "physics.dm2_3l", "normal ordering"),
        ("schedule.kind=deterministic", None, None),
        ("gas.P0=[[0, 0, 1.2, 0, 0, 0, 0, 0.577], 'mu']", "gas.P0", "unphysical"),
    ],
)
def test_bad_three_flavour_run_files_name_the_key(tmp_path, capsys, setting, key, allowed):
    out = tmp_path / "out.h5"
    argv = ["run", "three-flavours", "--out", out, *SMALL, "--set", setting]
    if key is None:  # a valid change: the deterministic schedule, with vacuum inside refused
        argv += ["--set", "schedule.vacuum=inside"]
        key, allowed = "schedule.vacuum", "two-flavour only"
    assert oile(*argv) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err and allowed in err, err
    assert not out.exists()


def test_three_flavour_keys_need_three_flavours(tmp_path, capsys):
    out = tmp_path / "out.h5"
    assert oile("run", "two-groups", "--out", out, "--set", "physics.theta13=0.15") == 2
    err = capsys.readouterr().err
    assert "'physics.theta13'" in err and "physics.n_flavours = 3" in err


@pytest.mark.parametrize(
    "angles",
    ["isotropic", "fixed-velocities", "fixed-angle", "beams"],
)
@pytest.mark.parametrize("schedule", [oj.Stochastic(dt=0.1), oj.Deterministic()], ids=str)
def test_every_angle_model_and_schedule_conserves_the_total(angles, schedule):
    """Without vacuum (omega = 0) every encounter conserves `sum_nu P - sum_nubar Pbar`, for every
    angle model and both schedules, in three flavours with both species (float64)."""
    gas = oj.Gas((24, 16, 24), (0.0, 0.0, 0.0), GAS.P0, antineutrino=GAS.antineutrino)
    if angles == "beams":
        angles = oj.Beams(jnp.asarray([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]))
    sol = oj.simulate_gas(
        gas,
        system=oj.System(gamma=0.2, B=B, angles=angles),
        schedule=schedule,
        sampling=oj.Sampling(key=jax.random.key(3), n_steps=20, dtype=jnp.float64),
        saveat=oj.SaveAt(every=10),
    )
    total = sol.total[0]
    assert_allclose(total - total[0], np.zeros(total.shape), rtol=0, atol=1e-12)
    assert np.abs(sol.group_mean[0, -1] - sol.group_mean[0, 0]).max() > 0.05
