"""The experiment scripts run end to end at their smoke size (marker `long`: `make test-long`, a
step of CI of its own, which keeps the default suite under its 10 minutes; the slow ones need
`make test-all`)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import oile_jax as oj

from .conftest import assert_described

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
pytestmark = pytest.mark.long


def load(name):
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))  # the scripts import their helper `prototype`
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_foreground_experiment(tmp_path, capsys):
    foreground = load("foreground")
    assert foreground.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    png, h5 = tmp_path / "foreground.png", tmp_path / "foreground.h5"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    data, attrs = oj.read_h5(h5)
    assert_described(h5)
    assert set(data) == {"background", "gamma_0", "gamma_0.03", "gamma_1"}
    assert '"size": "smoke"' in attrs["config"]
    # gamma = 0 keeps |P| = 1. The final simulated means follow the exact mean of their schedule:
    # 16 realizations, so the standardized error is Student-t with 15 degrees of freedom and
    # |t| < 5 has two-sided probability 1.6e-4 per component.
    assert np.allclose(np.linalg.norm(data["gamma_0"]["closed_form"], axis=-1), 1.0, atol=1e-6)
    for name in ("gamma_0.03", "gamma_1"):
        run = data[name]
        t = np.abs(run["mean"][-1] - run["closed_form_dt"][-1]) / run["stderr"][-1]
        assert np.all(t < 5), (name, t)
    assert "wrote" in capsys.readouterr().out
    # Existing output is kept unless --force is given.
    before = h5.read_bytes()
    with pytest.raises(SystemExit):
        foreground.main(["--size", "smoke", "--out", str(tmp_path)])
    assert h5.read_bytes() == before


def test_two_groups_experiment(tmp_path):
    two_groups = load("two_groups")
    assert two_groups.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    data, attrs = oj.read_h5(tmp_path / "two_groups.h5")
    assert_described(tmp_path / "two_groups.h5")
    assert (tmp_path / "two_groups.png").stat().st_size > 20_000
    assert '"N": 1000' in attrs["config"]
    S = len(data["ts"])
    assert data["group_mean"].shape == (S, 2, 3) and data["realizations"]["group_mean"].shape == (
        2,
        S,
        2,
        3,
    )
    # Lepton number B . sum P = -(600 - 400) sqrt(1 - 1e-6) is conserved (float32: 1e-5 relative).
    assert np.allclose(data["lepton"], -200 * np.sqrt(1 - 1e-6), rtol=1e-5, atol=0)
    # The 1e-3 seed has grown: the collective instability developed by mu t = 450.
    assert np.all(np.linalg.norm(data["group_mean"][-1, :, :2], axis=-1) > 0.1)
    # The dashed miscidynamic path starts at mu t = 300 and conserves Pbar_z = -lepton / N.
    path = data["path"]
    assert path["ts"][0] == 300.0 and path["ts"][-1] == data["ts"][-1]
    Pz = np.asarray([0.6, 0.4]) @ path["P"][..., 2].T
    assert np.allclose(Pz, -data["lepton"][0, 0] / 1000, rtol=0, atol=1e-4)
    # It stays close to the gas (the comparison in detail: miscidynamics.py).
    k = np.searchsorted(data["ts"], path["ts"])
    assert np.max(np.abs(path["P"][..., 2] - data["group_mean"][k, :, 2])) < 0.05


def test_three_flavours_experiment(tmp_path):
    experiment = load("three_flavours")
    assert experiment.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    h5 = tmp_path / "three_flavours.h5"
    data, attrs = oj.read_h5(h5)
    assert_described(h5)
    assert (tmp_path / "three_flavours.png").stat().st_size > 20_000
    assert '"N": 1000' in attrs["config"]
    three, two = data["three_flavours"], data["two_flavours"]
    S = len(data["ts"])
    assert three["occupations"].shape == (S, 2, 3) and two["occupations"].shape == (S, 2, 2)
    # B . sum P is conserved by the vacuum and by every encounter (float32: 1e-5 relative).
    for run in (three, two):
        lepton = run["lepton"].astype(np.float64)
        assert np.allclose(lepton, lepton[:, :1], rtol=1e-5, atol=0)
    # Two flavours cannot pass ln 2; three do by mu t = 300 (measured 0.715: about 7 standard
    # errors of a mean over 1000 neutrinos above ln 2), and the mean field plus collision
    # follows OILE (measured difference 8e-4; 0.01 allows the O(gamma) corrections and noise).
    assert np.all(two["entropy"] <= np.log(2) + 1e-5)
    assert three["entropy"][-1] > np.log(2) + 0.01
    mfc = data["meanfield_collision"]["group_entropy"][-1] @ data["fractions"]
    assert abs(mfc - three["entropy"][-1]) < 0.01
    # The third flavour, empty at the start (float32: rho_tautau = 1/3 + ... rounds to about
    # 1e-6), is populated.
    assert np.abs(three["occupations"][0, :, 2]).max() < 1e-5
    assert three["occupations"][:, :, 2].max() > 0.2


def test_meanfield_limit_experiment(tmp_path):
    """Small version of the OILE -> mean-field limit: over a fixed window the mean field's distance
    to OILE shrinks as gamma falls; over mu t <= 1/(mu gamma) it does not, while the mean field
    plus the collision term stays at least 50 times closer and its distance shrinks too."""
    limit = load("meanfield_limit")
    assert limit.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    data, _ = oj.read_h5(tmp_path / "meanfield_limit.h5")
    assert_described(tmp_path / "meanfield_limit.h5")
    assert data["order_mf_window"] > 0.5
    assert data["order_mfc_window"] > 0.5 and data["order_mfc_long"] > 0.5
    for g in data["gammas"]:
        run = data[f"gamma_{g:g}"]
        assert run["distance_mfc_long"] < run["distance_mf_long"] / 50
        assert run["distance_mf_long"] > 0.3  # the pure mean field has lost track by 1/(mu gamma)


def test_different_approaches_experiment(tmp_path):
    """Mean field vs OILE vs exact many-body: the mean field plus collision term follows the OILE
    ensemble mean (8 realizations of N = 8) to within 0.05 over mu t <= 10, the pure mean field
    does not (it has no decoherence), and both many-body descriptions approach ln 2."""
    approaches = load("different_approaches")
    assert approaches.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    data, _ = oj.read_h5(tmp_path / "different_approaches.h5")
    assert_described(tmp_path / "different_approaches.h5")
    assert np.max(np.abs(data["mean_field_collision"] - data["oile"])) < 0.05
    assert np.max(np.abs(data["mean_field"] - data["oile"])) > 0.3
    assert data["exact_entropy"][-1] > 0.9 * np.log(2) and data["oile_entropy"][-1] > 0.9 * np.log(
        2
    )
    assert data["scan"]["difference"].shape == (2, 1)


def test_miscidynamics_experiment(tmp_path):
    """Small version of the validation: N = 1000, the path seeded at mu t = 300 (the gas in its
    quasi-steady state) from the simulated gas follows it to mu t = 450 within 2% in Q and 1% in
    Omega and the lengths (measured: 0.3%, 0.3%, 0.1%)."""
    experiment = load("miscidynamics")
    assert experiment.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    data, _ = oj.read_h5(tmp_path / "miscidynamics.h5")
    assert_described(tmp_path / "miscidynamics.h5")
    table = data["table"]  # rows: t, Q sim, Q path, Omega sim, Omega path, p1, p2 sim, p1, p2 path
    assert table.shape[0] >= 1
    for _, q_sim, q_path, o_sim, o_path, p1, p2, m1, m2 in table:
        assert abs(q_path - q_sim) < 0.02 * q_sim
        assert abs(o_path - o_sim) < 0.01 * abs(o_sim)
        assert abs(m1 - p1) < 0.01 * p1 and abs(m2 - p2) < 0.01 * p2


def test_gpu_check_writes_its_tables_and_skips_past_its_budget(tmp_path):
    """The accelerator check's plumbing, quickly: with a budget spent before the first entry,
    every benchmark is recorded as skipped (none is run), and the JSON and Markdown agree."""
    import json

    import jax

    gpu_check = load("gpu_check")
    assert gpu_check.main(["--out", str(tmp_path), "--skip-tests", "--budget", "1e-9"]) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    table = (tmp_path / "gpu_check.md").read_text()
    names = [(r["benchmark"], r["n"]) for r in result["rows"]]
    assert names == [
        ("gas", 10**4),
        ("gas", 10**5),
        (f"gas, {8 * len(jax.devices())} shards on {len(jax.devices())} device(s)", 102_400),
        ("many-body", 12),
        ("many-body", 16),
    ]
    assert all(r["status"] == "skipped (budget)" and "rate" not in r for r in result["rows"])
    assert table.count("| skipped (budget) |") == 5 and result["gas_baseline"] > 0


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu(tmp_path):
    """`make gpu-check` end to end at the CPU's small sizes (about a minute on 2 cores)."""
    import json

    gpu_check = load("gpu_check")
    assert gpu_check.main(["--out", str(tmp_path), "--repeats", "1", "--budget", "600"]) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["tests"]["status"] == "passed" and result["tests"]["passed"] > 0
    assert [r["status"] for r in result["rows"]] == ["ok"] * 5
    assert all(r["rate"] > 0 for r in result["rows"])


def test_standard_problems_experiment(tmp_path):
    """The standard problems at their smoke size, with the issue's tolerances: MSW to 1e-4
    (float64; constant matter to 1e-10), growth rates to 2% (the mean field against the linear
    rate, OILE against the mean field plus its collision terms at the same gamma), the first
    minimum against the pendulum to 2%, the split frequency to 1%, and the sleeping top: growth
    below the threshold only (OILE: as the mean field plus collision, to 2%). Decoherence: at
    the larger gamma OILE grows at most 0.9 of the collisionless rate."""
    problems = load("standard_problems")
    assert problems.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    h5 = tmp_path / "standard_problems.h5"
    assert_described(h5)
    data, _ = oj.read_h5(h5)
    gammas = data["gammas"]
    for name in ("constant_nu", "constant_nubar"):
        row = data["msw"][name]
        assert row["error_mean_field"] < 1e-10
        assert max(row[f"error_oile_{g:g}"] for g in gammas) < 1e-10
    row = data["msw"]["adiabatic"]
    assert abs(row["final_mean_field"] - row["reference"]) < 1e-4
    assert abs(row["final_oile"] - row["reference"]) < 1e-4
    for name in ("bipolar", "two_beams"):
        row = data[name]
        assert abs(row["rate_mean_field"] / row["kappa"] - 1) < 0.02
        for g in gammas:
            rate = row[f"rate_oile_{g:g}"]
            assert abs(rate / row[f"rate_mean_field_collision_{g:g}"] - 1) < 0.02, (name, g)
        assert row[f"rate_oile_{gammas[0]:g}"] < 0.9 * row["kappa"]
    row = data["bipolar"]
    assert abs(row["t_min_mean_field"] / row["t_min_pendulum"] - 1) < 0.02
    row = data["sleeping_top"]
    unstable = row["mus"] < row["threshold"]
    assert np.all(row["kappa"][unstable] > 0) and np.all(row["kappa"][~unstable] == 0)
    assert np.all(row["drop"][unstable] > 0.05) and np.all(row["drop"][~unstable] < 1e-6)
    # Either side of the threshold in OILE: the mean field grows to O(1) below it and stays at
    # the seed above; OILE follows the mean field plus collision (which grows far slower).
    g = row["oile_gamma"]
    below = row["oile_mus"] < row["threshold"]
    assert below.any() and (~below).any()
    assert np.all(row["max_perp_mean_field"][below] > 0.1)
    assert np.all(row["max_perp_mean_field"][~below] < 1e-3)
    oile, mfc = row[f"max_perp_oile_{g:g}"], row[f"max_perp_mean_field_collision_{g:g}"]
    assert np.all(np.abs(oile / mfc - 1) < 0.02)
    row = data["spectral_split"]
    assert abs(row["split_mean_field"] / row["expected"] - 1) < 0.01
    for g in data["split_gammas"]:
        split = row[f"split_oile_{g:g}"]
        assert abs(split / row[f"split_mean_field_collision_{g:g}"] - 1) < 0.01, g


@pytest.mark.parametrize("name", ["benchmark_flavours", "benchmark_species", "benchmark_gradients"])
def test_round_benchmarks_run_and_record(tmp_path, name):
    """The benchmarks run end to end on a small gas and record every variant (their numbers
    are measured by running them, never asserted here)."""
    table = tmp_path / "bench.json"
    argv = ["--sizes", "1000", "--rounds", "2", "--repeats", "1", "--json", str(table)]
    if name == "benchmark_gradients":
        argv += ["--steps", "16"]
    assert load(name).main(argv) == 0
    import json

    result = json.loads(table.read_text())
    assert result["rounds"] == 2 and result["repeats"] == 1
    rows = result["rows"]
    if name == "benchmark_gradients":
        assert [r["variant"] for r in rows] == [
            "forward",
            "grad P0 (remat)",
            "grad P0 (no remat)",
            "grad all (remat)",
        ]
        forward = rows[0]
        assert forward["ratio_to_forward"] == 1.0 and forward["round_ratio_max"] == 1.0
        for r in rows:
            assert np.isclose(r["ratio_to_forward"], r["best_s"] / forward["best_s"])
            assert 0 < r["round_ratio_median"] <= r["round_ratio_max"] and r["temp_bytes"] > 0
    elif name == "benchmark_flavours":
        assert [r["physics"] for r in rows] == ["neutrinos, vacuum", "nu + nubar, constant matter"]
        for r in rows:
            assert r["rate_2"] > 0 and r["rate_3"] > 0
            assert np.isclose(r["cost_ratio"], r["rate_2"] / r["rate_3"])
    else:
        assert len(rows) == 4 and rows[0]["ratio"] == 1.0


def test_stability_benchmark_runs_and_records(tmp_path):
    """The stability benchmark end to end on small systems (its times are measured by running
    it, never asserted here); the rates it records are the ones `linear_stability` gives."""
    import json

    table = tmp_path / "stability.json"
    argv = ["--sizes", "10", "--repeats", "1", "--grid", "3", "--json", str(table)]
    assert load("benchmark_stability").main(argv) == 0
    result = json.loads(table.read_text())
    rows = [(r["n"], r["method"]) for r in result["rows"]]
    assert rows == [(10, "dense"), (10, "matrix-free")]
    assert all(r["growth_rate"] > 0 for r in result["rows"]) and result["map"]["points"] == 9
    for dense, free in zip(result["rows"][::2], result["rows"][1::2], strict=True):
        assert abs(dense["growth_rate"] - free["growth_rate"]) < 1e-8


@pytest.mark.slow  # 35 s on 2 cores, compilation of the L-BFGS step (its line search and gradient)
def test_fit_gamma_experiment(tmp_path):
    """Gradient descent on log gamma through `evolve_gas` (8 L-BFGS steps at the smoke size, N =
    200: noisy observations) lowers every fit's loss, and on the first observation reaches a
    loss no larger than the best point of the forward loss scan, between that point's grid
    neighbours."""
    experiment = load("fit_gamma")
    assert experiment.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    h5 = tmp_path / "fit_gamma.h5"
    data, attrs = oj.read_h5(h5)
    assert_described(h5)
    assert (tmp_path / "fit_gamma.png").stat().st_size > 20_000
    loss = data["history_loss"]
    # The observations' noise (N = 200) keeps the best loss at about a tenth of the start's.
    assert loss.shape == (2, 8) and np.all(loss[:, -1] < 0.5 * loss[:, 0])
    grid, scan = data["grid_gamma"], data["grid_loss"]
    best = int(np.argmin(scan))
    assert 0 < best < len(grid) - 1 and np.isclose(grid[best], 0.1, rtol=1e-9)
    assert loss[0, -1] <= scan[best]
    assert grid[best - 1] < data["gamma_fitted"][0] < grid[best + 1]


def test_group_field_benchmark_runs_and_records(tmp_path):
    """The group-field benchmark end to end at one small size (its rates are measured by running
    it, never asserted here): both algorithms give the same right-hand side."""
    import json

    table = tmp_path / "group_field.json"
    argv = ["--sizes", "5", "--steps", "2", "--rounds", "1", "--repeats", "1", "--json", str(table)]
    assert load("benchmark_group_field").main(argv) == 0
    rows = json.loads(table.read_text())["rows"]
    assert [r["G"] for r in rows] == [5]
    assert rows[0]["difference"] < 1e-14 and rows[0]["linear"] > 0 and rows[0]["dense"] > 0


def test_meanfield_benchmark_runs_and_records(tmp_path):
    """The mean-field benchmark against SciPy's RK45 end to end at one small size of each
    problem (its times are measured by running it, never asserted here): both sides solve the
    same equations to the tolerance."""
    import json

    table = tmp_path / "meanfield.json"
    argv = ["--sizes", "21", "--rounds", "1", "--json", str(table)]
    assert load("benchmark_meanfield").main(argv) == 0
    rows = json.loads(table.read_text())["rows"]
    assert [(r["problem"], r["modes"]) for r in rows] == [("split", 21), ("eln", 21)]
    for row in rows:
        assert row["difference"] < 1e-4 and row["oile"] > 0 and row["cold"] > 0


@pytest.mark.long  # two gas runs of 7500 and 15 000 steps: make test-long, in CI
def test_collisional_instability_experiment(tmp_path):
    """Small version of the collisional instability as gamma -> 0: at each gamma the gas grows
    at the rate of the mean field with `Reemission` and OILE's collision term (5 standard errors
    of its 4 realizations), below `linear_stability`'s gamma -> 0 rate, and closer to it at the
    smaller gamma."""
    experiment = load("collisional_instability")
    assert experiment.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    data, _ = oj.read_h5(tmp_path / "collisional_instability.h5")
    assert_described(tmp_path / "collisional_instability.h5")
    rates = []
    for g in data["gammas"]:
        run = data[f"gamma_{g:g}"]
        assert abs(run["rate"] - run["rate_mean_field_collision"]) < 5 * run["rate_error"]
        assert run["rate"] < data["limit"]
        rates.append(run["rate"])
    assert rates[-1] > rates[0]  # gamma falls: the rate rises toward the limit
