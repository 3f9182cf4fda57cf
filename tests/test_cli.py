"""The `oile` command line: every command, run files and presets, errors, resume, outputs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj
from oile_jax._app import cli as _cli, commands as _commands, config as _config

from .conftest import assert_described, interrupt_after_checkpoints

README = Path(__file__).resolve().parents[1] / "README.md"


def oile(*argv) -> int:
    return _cli.main([str(a) for a in argv])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SMALL_GAS = """
model = "gas"
seed = 3

[physics]
gamma = 0.1
angles = "fixed-velocities"

[schedule]
kind = "stochastic"
dt = 0.05

[run]
t_max = 20.0
n_saves = 11
n_realizations = 2
chunk_saves = 2

[gas]
counts = [30, 20]
omegas = [0.1, 0.2]
P0 = [[0.1, 0.0, 0.99], [-0.1, 0.0, -0.99]]
"""


def test_console_script_and_help(capsys):
    script = shutil.which("oile", path=str(Path(sys.executable).parent))
    assert script is not None, "pyproject.toml installs the `oile` console script"
    done = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert "run" in done.stdout and "equilibrium" in done.stdout
    for command in ("run", "presets", "config", "plot", "equilibrium", "path", "bench"):
        with pytest.raises(SystemExit) as exit_:
            oile(command, "--help")
        assert exit_.value.code == 0
        assert "usage: oile " + command in capsys.readouterr().out


def test_presets_resolve_and_round_trip(capsys):
    names = set(_config.presets())
    assert {"foreground", "two-groups", "two-groups-meanfield", "spectrum"} <= names
    for name in names:
        document, _ = _config.load(name)
        resolved = _config.resolve(document)
        # The printed resolved configuration is itself a valid run file giving the same.
        assert oile("config", name) == 0
        printed = capsys.readouterr().out
        import tomllib

        assert _config.resolve(tomllib.loads(printed)) == resolved
    assert oile("presets") == 0
    assert "two-groups" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, key, allowed",
    [
        (("[physics]\ngamma = 0.1", "[physics]\ngamma = 0.1\ngama = 2"), "physics.gama", "gamma"),
        (("[run]", "[runs]\nx = 1\n[run]"), "runs", "sections"),
        (("gamma = 0.1", "gamma = -0.1"), "physics.gamma", "> 0"),
        (("gamma = 0.1", 'gamma = "big"'), "physics.gamma", "number"),
        (('kind = "stochastic"', 'kind = "sometimes"'), "schedule.kind", "'deterministic'"),
        (("[0.1, 0.0, 0.99]", "[0.5, 0.0, 0.99]"), "gas.P0", "|P| <= 1"),
        (("dt = 0.05", "dt = 0.5"), "schedule.dt", "gamma / mu"),
        (("counts = [30, 20]", "counts = [31, 20]"), "gas.counts", "N even"),
        (("omegas = [0.1, 0.2]", "omegas = [0.1]"), "gas.omegas", "one entry per group"),
        (('model = "gas"', 'model = "fluid"'), "model", "'foreground'"),
        (("t_max = 20.0", "t_maxx = 20.0"), "run.t_maxx", "run.t_max"),
        (("t_max = 20.0", ""), "run.t_max", "required"),
        (("seed = 3", "seed = 3\n[foreground]\nomega = 1.0"), "foreground.omega", "not used"),
        (("n_saves = 11", "n_saves = 1"), "run.n_saves", ">= 2"),
        (("chunk_saves = 2", "chunk_saves = 2.5"), "run.chunk_saves", "integer"),
    ],
)
def test_bad_run_files_name_the_key(tmp_path, capsys, change, key, allowed):
    text = SMALL_GAS.replace(*change)
    assert text != SMALL_GAS
    config = write(tmp_path / "bad.toml", text)
    out = tmp_path / "out.h5"
    assert oile("run", config, "--out", out) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err and allowed in err, err
    assert not out.exists()


def test_bad_command_lines(tmp_path, capsys):
    config = write(tmp_path / "gas.toml", SMALL_GAS)
    out = tmp_path / "out.h5"
    assert oile("run", "no-such-preset") == 2
    assert "presets are" in capsys.readouterr().err
    assert oile("run", write(tmp_path / "x.toml", "model = [")) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert oile("run", config, "--set", "physics.gammma=1", "--out", out) == 2
    assert "'physics.gammma'" in capsys.readouterr().err
    assert oile("run", config, "--set", "physics.gamma", "--out", out) == 2
    assert "key=value" in capsys.readouterr().err
    if not any(d.platform == "gpu" for d in jax.devices()):
        assert oile("run", config, "--device", "gpu", "--out", out) == 2
        assert "--device gpu" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        oile("run", config, "--precision", "float16")
    assert not out.exists()


def test_gas_run_writes_everything_and_never_overwrites(tmp_path, capsys):
    config = write(tmp_path / "gas.toml", SMALL_GAS)
    out = tmp_path / "gas.h5"
    assert oile("run", config, "--out", out, "--set", "run.save_state=true") == 0
    data, attrs = oj.read_h5(out)
    assert_described(out)
    R, S, N = 2, 11, 50
    assert data["ts"].shape == (S,) and np.isclose(data["ts"][-1], 20.0)
    assert data["group_mean"].shape == (R, S, 2, 3) and data["group_length"].shape == (R, S, 2)
    assert data["state"].shape == (R, S, N, 3) and data["velocities"].shape == (R, N, 3)
    assert data["group_mean"].dtype == np.float32
    # Saved observables agree with the saved states.
    assert np.allclose(
        data["state"][..., :30, :].mean(-2), data["group_mean"][..., 0, :], atol=1e-6
    )
    lepton = data["lepton"]
    assert np.allclose(lepton, lepton[:, :1], rtol=1e-5, atol=0)
    # Provenance and the resolved configuration.
    assert attrs["kind"] == "run" and attrs["model"] == "gas" and attrs["name"] == "gas"
    assert attrs["oile_jax_version"] == oj.__version__ and attrs["jax_version"] == jax.__version__
    assert attrs["device"].startswith(jax.devices()[0].platform)
    import jaxlib

    assert attrs["jaxlib_version"] == jaxlib.__version__
    assert attrs["python_version"] == ".".join(map(str, sys.version_info[:3]))
    config_back = json.loads(attrs["config"])
    assert config_back["physics"]["gamma"] == 0.1 and config_back["run"]["save_state"] is True
    assert config_back["precision"] == "float32" and config_back["seed"] == 3
    assert "--set run.save_state=true" in attrs["command"]
    # An existing output is never overwritten without --force.
    before = out.read_bytes()
    assert oile("run", config, "--out", out) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == before
    # --seed overrides the file's seed (--precision: see the mean-field test).
    argv = ["--out", out, "--force", "--seed", "4", "--set", "run.save_state=true"]
    assert oile("run", config, *argv) == 0
    data4, attrs4 = oj.read_h5(out)
    assert_described(out)
    assert json.loads(attrs4["config"])["seed"] == 4
    assert not np.allclose(data4["group_mean"][:, -1], data["group_mean"][:, -1], atol=1e-3)


def test_interrupted_run_resumes_exactly(tmp_path, monkeypatch, capsys):
    config = write(tmp_path / "gas.toml", SMALL_GAS)
    reference, out = tmp_path / "reference.h5", tmp_path / "gas.h5"
    assert oile("run", config, "--out", reference) == 0

    restore = interrupt_after_checkpoints(monkeypatch, 2)  # Ctrl-C after the second chunk
    assert oile("run", config, "--out", out) == 130
    assert "--resume" in capsys.readouterr().err
    checkpoint = tmp_path / "gas.checkpoint.h5"
    assert checkpoint.exists() and not out.exists()
    restore()
    # A new run refuses to start over the checkpoint without --resume.
    assert oile("run", config, "--out", out) == 2
    assert "--resume" in capsys.readouterr().err
    # A different run does not take this checkpoint.
    assert oile("run", config, "--out", out, "--resume", "--seed", "9") == 2
    assert "different run" in capsys.readouterr().err
    assert oile("run", config, "--out", out, "--resume") == 0
    assert not checkpoint.exists()
    (resumed, _), (uninterrupted, _) = oj.read_h5(out), oj.read_h5(reference)
    # The same compiled chunks on the saved state: exact on any machine.
    for name in ("group_mean", "group_std", "lepton", "encounters", "final_state"):
        np.testing.assert_array_equal(resumed[name], uninterrupted[name])


def test_resume_applies_to_gas_runs_only(tmp_path, capsys):
    out = tmp_path / "fg.h5"
    assert oile("run", "foreground", "--out", out, "--resume") == 2
    assert "only gas runs" in capsys.readouterr().err


def test_foreground_preset_matches_its_exact_mean(tmp_path):
    out = tmp_path / "fg.h5"
    assert oile("run", "foreground", "--out", out, "--set", "run.t_max=3") == 0
    data, attrs = oj.read_h5(out)
    assert_described(out)
    assert attrs["model"] == "foreground" and data["P"].shape == (256, 201, 3)
    # 256 realizations: the standardized error is Student-t with 255 degrees of freedom;
    # |t| < 5 has probability 6e-7 per component.
    t = (data["mean"][1:] - data["exact_mean"][1:]) / data["stderr"][1:]
    assert np.max(np.abs(t)) < 5
    assert oile("plot", out) == 0
    png = tmp_path / "fg.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


@pytest.mark.long  # 15-20 s: make test-long and CI, to keep the default suite inside 10 minutes
def test_meanfield_and_manybody_runs_and_plots(tmp_path):
    mf = tmp_path / "mf.h5"
    argv = ["--out", mf, "--set", "run.t_max=100", "--precision", "float64"]
    assert oile("run", "two-groups-meanfield", *argv) == 0
    data, _ = oj.read_h5(mf)
    assert_described(mf)
    # Lepton number of the mean field plus collision: conserved (the vector field conserves it
    # exactly; Tsit5 steps conserve linear invariants up to rounding).
    assert data["lepton"].dtype == np.float64
    assert np.allclose(data["lepton"], data["lepton"][0], rtol=1e-12, atol=0)
    assert data["group_mean"].shape == (501, 2, 3)
    # The preset's schedule.dt reaches the collision term's finite-step part: the run equals the
    # library's GroupField with that dt (the term itself is tested in test_meanfield) and
    # differs from the Poisson limit (no dt), which a run file without schedule.dt gives.
    config = _config.resolve(_config.load("two-groups-meanfield")[0])
    assert config["schedule"]["dt"] == 0.01
    gas = oj.Gas(config["gas"]["counts"], config["gas"]["omegas"], config["gas"]["P0"])
    ts = np.linspace(0, 100, 501)
    B = jnp.asarray([0.0, 0.0, -1.0])

    def solve(dt):
        field = oj.GroupField(
            jnp.asarray(gas.fractions),
            gas.omegas,
            oj.System(gamma=0.01, mu=1.0, B=B),
            collision="stochastic",
            n=gas.n,
            dt=dt,
        )
        return np.asarray(oj.solve_meanfield(field, gas.P0, jnp.asarray(ts), rtol=1e-8,
                                             atol=1e-10).P)  # fmt: skip

    with_dt, poisson = solve(jnp.asarray(0.01)), solve(None)
    np.testing.assert_allclose(data["group_mean"], with_dt, rtol=0, atol=1e-9)
    assert np.max(np.abs(with_dt - poisson)) > 1e-4
    mb = tmp_path / "mb.h5"
    overrides = ["--set", "run.n_realizations=2", "--set", "gas.counts=[4, 4]"]
    overrides += ["--precision", "float64"]
    assert oile("run", "manybody-small", "--out", mb, *overrides) == 0
    data, _ = oj.read_h5(mb)
    assert_described(mb)
    assert data["exact"].shape == (2, 101, 8, 3)
    assert np.allclose(data["norm"], 1, atol=1e-12)
    # A save every round. After the first round every neutrino has met one partner in a
    # product state: the exact one-body states are OILE's. Later, repeated meetings and
    # accumulated correlations make them differ.
    np.testing.assert_allclose(data["exact"][:, 1], data["oile"][:, 1], rtol=0, atol=1e-12)
    assert not np.allclose(data["exact"][:, 1], data["exact"][:, 0], atol=1e-3)
    assert np.max(np.abs(data["exact"][:, -1] - data["oile"][:, -1])) > 1e-3
    for path in (mf, mb):
        assert oile("plot", path) == 0 and path.with_suffix(".png").stat().st_size > 20_000


def test_plot_refuses_foreign_and_corrupt_files(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    assert oile("plot", corrupt) == 2
    assert "corrupt" in capsys.readouterr().err
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    assert oile("plot", foreign) == 2
    assert "not an oile_jax result" in capsys.readouterr().err
    assert oile("plot", tmp_path / "missing.h5") == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "foreign.png").exists() and not (tmp_path / "corrupt.png").exists()


def test_equilibrium_command(tmp_path, capsys):
    out = tmp_path / "eq.h5"
    args = ["--fractions", 0.6, 0.4, "--omegas", 0.1, 0.2, "--lengths", 1, -1, "--Pz", 0.2]
    assert oile("equilibrium", *args, "--out", out) == 0
    assert "Omega" in capsys.readouterr().out
    data, attrs = oj.read_h5(out)
    assert_described(out)
    assert attrs["kind"] == "equilibrium" and data["Omega"].shape[0] >= 1
    # Every equilibrium listed satisfies SC1-SC2 and conserves Pbar_z.
    assert np.max(np.abs(data["residual"])) < 1e-10
    assert np.allclose(data["P"][..., 2] @ np.asarray([0.6, 0.4]), 0.2, atol=1e-10)
    # The same equilibrium from a guess next to it.
    guess = [float(data["Omega"][0]) + 0.01, float(data["Q"][0]) * 1.1]
    assert oile("equilibrium", *args, "--guess", *guess) == 0
    assert f"{float(data['Omega'][0]):.8f}" in capsys.readouterr().out
    assert oile("equilibrium", "--fractions", 0.6, 0.5, "--omegas", 0.1, 0.2) == 2
    assert "--lengths" in capsys.readouterr().err
    bad = ["--fractions", 0.6, 0.5, "--omegas", 0.1, 0.2, "--lengths", 1, -1, "--Pz", 0.2]
    assert oile("equilibrium", *bad) == 2
    assert "sum to 1" in capsys.readouterr().err


@pytest.mark.long  # 17 s on 2 cores: make test-long, in CI
def test_path_command_from_lengths_and_from_a_gas_run(tmp_path, capsys):
    out = tmp_path / "path.h5"
    args = ["--fractions", 0.6, 0.4, "--omegas", 0.1, 0.2, "--lengths", 0.9, -0.9, "--Pz", 0.2]
    assert oile("path", *args, "--gamma", 0.01, "--t-max", 200, "--out", out) == 0
    data, attrs = oj.read_h5(out)
    assert_described(out)
    path = data["path"]
    assert attrs["kind"] == "path" and path["ts"].shape == (201,)
    # Pbar_z is conserved along the path; the lengths relax (shrink) monotonically.
    assert np.allclose(path["P"][..., 2] @ np.asarray([0.6, 0.4]), 0.2, atol=1e-8)
    assert np.all(np.diff(np.abs(path["lengths"][:, 0])) < 0)
    assert out.with_suffix(".png").stat().st_size > 20_000
    assert oile("path", *args, "--gamma", 0.01, "--t-max", 200, "--out", out) == 2
    assert "--force" in capsys.readouterr().err

    gas = tmp_path / "gas.h5"
    overrides = [
        "--set",
        "gas.counts=[120, 80]",
        "--set",
        "run.t_max=300",
        "--set",
        "run.n_saves=31",
    ]
    assert oile("run", "two-groups", "--out", gas, *overrides) == 0
    assert oile("path", "--from", gas, "--start", 200, "--out", tmp_path / "p2.h5") == 0
    data, _ = oj.read_h5(tmp_path / "p2.h5")
    assert_described(tmp_path / "p2.h5")
    assert data["path"]["ts"][0] == 200.0 and "gas" in data
    assert oile("plot", tmp_path / "p2.h5", "--out", tmp_path / "p2b.png") == 0
    assert oile("path", "--from", gas, "--start", 1000, "--out", tmp_path / "p3.h5") == 2
    assert "outside" in capsys.readouterr().err


def test_bench_command(tmp_path, capsys):
    table = tmp_path / "bench.json"
    argv = ["--sizes", 1000, "--steps", 20, "--baseline-encounters", 200, "--json", table]
    assert oile("bench", *argv) == 0
    assert "encounters/s" in capsys.readouterr().out
    result = json.loads(table.read_text())
    (row,) = result["rows"]
    assert row["n"] == 1000 and row["steps"] == 20
    # The jitted gas beats the one-pair-at-a-time NumPy baseline by orders of magnitude (about
    # 1800x at N = 1000 on the project's CPU); 10x is far inside any machine's range.
    assert row["ratio"] > 10
    assert np.isclose(row["ratio"], row["rate"] / result["baseline"])
    assert result["repeats"] == 3
    assert oile("bench", *argv[:-2], "--repeats", 0) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err


def test_documented_command_lines_parse():
    """Every `oile ...` line of the bash blocks of the README and the documentation's pages is a
    valid command line (the run-file keys are generated into the site from the schema; the site
    test checks that every key and option is there)."""
    import re
    import shlex

    pages = [README, *sorted((README.parent / "docs").rglob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line.split("#")[0].split(">")[0] for block in blocks for line in block.splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("oile ")]
    assert len(commands) >= 8
    for argv in commands:
        args = _cli.parser().parse_args(argv)
        if args.command in ("run", "config") and args.config in _config.presets():
            _commands.resolved(args)  # the preset with these --set values is a valid run


def test_msw_preset_matches_the_closed_form(tmp_path):
    """`oile run msw` (nu_e and nubar_e in constant matter, float64): each group's `P_ee`
    against `1 - sin^2 2theta_m sin^2(omega_m t/2)`, lambda -> -lambda for the antineutrinos."""
    out = tmp_path / "msw.h5"
    assert oile("run", "msw", "--out", str(out), "--set", "precision=float64") == 0
    data, _ = oj.read_h5(out)
    assert list(data["groups"]["antineutrino"]) == [False, True]
    ts, theta, lam = data["ts"], 0.3, 0.6
    for g, signed in ((0, lam), (1, -lam)):
        omega_m = np.hypot(np.cos(2 * theta) - signed, np.sin(2 * theta))
        P_ee = 1 - (np.sin(2 * theta) / omega_m) ** 2 * np.sin(omega_m * ts / 2) ** 2
        measured = (1 + data["group_mean"][0, :, g, 2]) / 2
        np.testing.assert_allclose(measured, P_ee, rtol=0, atol=1e-10)


def test_bipolar_meanfield_run_file_grows_at_the_pendulum_rate(tmp_path):
    """The bipolar preset's physics as a mean-field run file (antineutrino group, inverted
    ordering, flavour basis): `|P_perp|` of the neutrinos grows at `kappa = sqrt(omega (2 mu' -
    omega)) = 3` (`mu' = mu / 2`), to 2%."""
    config = tmp_path / "bipolar-mf.toml"
    config.write_text(
        'model = "meanfield"\nprecision = "float64"\n[physics]\nmu = 10.0\nbasis = "flavour"\n'
        'theta = 1e-5\nordering = "inverted"\n[run]\nt_max = 4.0\nn_saves = 401\n'
        "[meanfield]\nrtol = 1e-11\natol = 1e-13\n"
        "[gas]\ncounts = [500, 500]\nomegas = [1.0, 1.0]\n"
        "P0 = [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]\nantineutrino = [false, true]\n"
    )
    out = tmp_path / "bipolar-mf.h5"
    assert oile("run", str(config), "--out", str(out)) == 0
    data, _ = oj.read_h5(out)
    perp = np.hypot(*data["group_mean"][:, 0, :2].T)
    inside = (perp > 1e-3) & (perp < 3e-2)
    rate = np.polyfit(data["ts"][inside], np.log(perp[inside]), 1)[0]
    # The mean field of N = 1000 has mu' = mu N/(2 (N - 1)) (no self-interaction).
    mu_prime = 10.0 * 500 / 999
    assert abs(rate / np.sqrt(2 * mu_prime - 1) - 1) < 0.02
    assert abs(rate / 3 - 1) > 1e-3  # it sees N - 1: not a value of N = infinity


@pytest.mark.parametrize(
    "change,keys",
    [
        (["--set", "gas.directions=[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]"], "gas.directions"),
        (["--set", "gas.omegas=[1.0, 1.01]"], "gas.omegas"),
        (["--set", "physics.gamma=0.005"], "physics.gamma"),
    ],
)
def test_resume_names_the_run_file_keys_that_differ(tmp_path, monkeypatch, capsys, change, keys):
    """`--resume` with another beam direction (the fingerprint once held `f32[2,3]`, so this
    resumed and mixed two runs) or another parameter: refused, naming the run-file key."""
    small = ["--set", "gas.counts=[8, 8]", "--set", "run.t_max=0.4", "--set", "run.n_saves=5"]
    out = tmp_path / "tb.h5"
    restore = interrupt_after_checkpoints(monkeypatch, 1)
    assert oile("run", "two-beams", *small, "--set", "run.chunk_saves=1", "--out", out) == 130
    restore()
    checkpoint = tmp_path / "tb.checkpoint.h5"
    before = checkpoint.read_bytes()
    capsys.readouterr()
    assert oile("run", "two-beams", *small, *change, "--out", out, "--resume") == 2
    err = capsys.readouterr().err
    assert f"it differs in {keys};" in err and "Traceback" not in err, err
    assert checkpoint.read_bytes() == before and not out.exists()


def test_resume_with_another_step_names_the_step(tmp_path, monkeypatch, capsys):
    """A changed `schedule.dt` at the same `run.t_max` changes the number of steps too: the
    message names `schedule.dt`, not the run's length."""
    config = write(tmp_path / "gas.toml", SMALL_GAS)
    out = tmp_path / "gas.h5"
    restore = interrupt_after_checkpoints(monkeypatch, 1)
    assert oile("run", config, "--out", out) == 130
    restore()
    capsys.readouterr()
    assert oile("run", config, "--out", out, "--resume", "--set", "schedule.dt=0.005") == 2
    err = capsys.readouterr().err
    assert "it differs in schedule.dt;" in err, err


def test_every_value_of_a_checkpoint_has_a_run_file_key():
    """The run-file keys a resume blames are derived from the schema (`Key.shapes`), not kept
    by hand beside the fingerprint: every value a checkpoint records, for a run with species,
    matter, a coupling profile, beams and shards, maps to keys of the schema."""
    from oile_jax._app.runner import run_file_keys
    from oile_jax._app.schema import SCHEMA
    from oile_jax._gas.checkpoint import fingerprint
    from oile_jax._gas.driver import prepare

    gas = oj.Gas((8, 8), (0.1, 0.2), [[0.0, 0, 1], [0, 0, -1.0]], antineutrino=(False, True))
    system = oj.System(
        gamma=0.1,
        mu=oj.Exponential(1.0, 5.0),
        B=oj.mixing_vector(0.3, "flavour"),
        angles=oj.Beams([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
        matter=oj.Exponential(0.5, 4.0),
        ordering="inverted",
    )
    saveat, sharding = oj.SaveAt(every=2), oj.Sharding(shards=2)
    gas, spec = prepare(
        gas, system, oj.Stochastic(dt=0.05), oj.Sampling(jax.random.key(0), n_steps=4), saveat
    )
    names = json.loads(fingerprint(gas, spec, saveat, sharding))
    for name in names:
        keys = run_file_keys([name])
        assert keys and all(k in SCHEMA or "checkpoint format" in k for k in keys), (name, keys)


@pytest.mark.parametrize("model", ["gas", "foreground", "meanfield"])
def test_gamma_goes_from_the_run_file_to_the_model_checked_once(tmp_path, monkeypatch, model):
    """`physics.gamma` is checked once on its way from `oile run` to the model: the run file is
    built into its objects once (`run_options.build`, which binds the `System`) and the driver
    takes the bound system as it is. Counted at the library's one rule for it."""
    from oile_jax._physics import system as _system

    checked = []
    rule = _system.check_positive

    def counted(x, name):
        checked.append(name)
        return rule(x, name)

    monkeypatch.setattr(_system, "check_positive", counted)
    preset = {"gas": "two-groups", "foreground": "foreground", "meanfield": "two-groups-meanfield"}
    small = ["--set", "run.t_max=1", "--set", "run.n_saves=2"]
    if model != "meanfield":
        small += ["--set", "run.n_realizations=2"]
    if model != "foreground":
        small += ["--set", "gas.counts=[4, 4]"]
    if model == "meanfield":
        small += ["--set", "physics.gamma=0.1", "--set", "meanfield.collision='stochastic'"]
    assert oile("run", preset[model], *small, "--out", tmp_path / "out.h5") == 0
    assert checked.count("gamma") == 1, checked


def test_a_bound_system_is_taken_as_is():
    """A `System` bound to the gas's groups runs as the unbound one (the same program on the
    same numbers); bound to other groups, it is refused."""
    gas = oj.Gas((4, 4), jnp.asarray([0.1, 0.2]), jnp.asarray([[0.0, 0, 1], [0, 0, -1.0]]))
    system = oj.System(gamma=0.1, B=oj.mixing_vector(0.1))
    sampling = oj.Sampling(jax.random.key(1), n_steps=8, n_realizations=2, dtype=jnp.float32)
    bound = system.bind(gas.omegas, gas.antineutrino, dtype=jnp.float32)
    a = oj.simulate_gas(gas, system, oj.Stochastic(dt=0.05), sampling)
    b = oj.simulate_gas(gas, bound, oj.Stochastic(dt=0.05), sampling)
    np.testing.assert_array_equal(np.asarray(a.group_mean), np.asarray(b.group_mean))
    other = system.bind(jnp.asarray([0.1, 0.3]), dtype=jnp.float32)
    with pytest.raises(ValueError, match="already bound to other particle classes"):
        oj.simulate_gas(gas, other, oj.Stochastic(dt=0.05), sampling)

    # Species traced (frequencies concrete) cannot be compared: refused, not taken as all
    # neutrinos.
    def rebound(flags):
        traced = oj.System(
            gamma=bound.gamma, mu=bound.mu, B=bound.B, angles=bound.angles,
            omegas=bound.omegas, antineutrino=flags,
        )  # fmt: skip
        return traced.bind(gas.omegas, gas.antineutrino, dtype=jnp.float32).gamma

    with pytest.raises(ValueError, match="already bound to other particle classes"):
        jax.jit(rebound)(jnp.asarray([False, True]))
    with pytest.raises(ValueError, match="already bound to other particle classes"):
        oj.simulate_gas(gas, bound, oj.Stochastic(dt=0.05), oj.Sampling(
            jax.random.key(1), n_steps=8, n_realizations=2, dtype=jnp.float64))  # fmt: skip


def test_system_errors_name_the_option():
    """`System.bind`'s errors say which option they are about (`OptionError.option`), and the
    run file names the keys that set it."""
    from oile_jax._support.checks import OptionError

    for system, option in (
        (oj.System(gamma=-1.0), "gamma"),
        (oj.System(gamma=1.0, mu=0.0), "mu"),
        (oj.System(gamma=1.0, B=(0.0, 0.0, 2.0)), "B"),
        (oj.System(gamma=1.0, matter=float("nan")), "matter"),
    ):
        with pytest.raises(OptionError) as error:
            system.bind([0.1])
        assert error.value.option == option
