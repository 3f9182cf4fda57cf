"""Bad input, as a user would give it, across the Python API and the `oile` command line.

Every case asserts that the error names the argument (or run-file key, or option) and what is
allowed. The command-line cases also assert exit status 2, no traceback, and that nothing
already on disk was changed (a directory with an earlier result in it is compared byte for byte
before and after)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj
from oile_jax._app import cli as _cli

from .conftest import run_options

KEY = jax.random.key(0)
UP = [0.0, 0.0, 1.0]
GAS = oj.Gas((6, 4), (0.1, 0.2), [[0.1, 0, 0.99], [-0.1, 0, -0.99]])
STOCH = oj.Stochastic(dt=0.01)
F, W = [0.6, 0.4], [0.1, 0.2]


def foreground(**kw):
    args = dict(gamma=0.1, schedule=STOCH, key=KEY, n_steps=4)
    args.update(kw)
    P0, P_b = args.pop("P0", UP), args.pop("P_b", [1.0, 0, 0])
    return oj.simulate_foreground(P0, P_b, **run_options(**args))


def gas(gas=GAS, **kw):
    args = dict(gamma=0.1, schedule=STOCH, key=KEY, n_steps=4)
    args.update(kw)
    return oj.simulate_gas(gas, **run_options(**args))


def sweep(**kw):
    args = dict(gamma=[0.1, 0.2], schedule=STOCH, key=KEY, n_steps=4)
    args.update(kw)
    return oj.sweep_gas(GAS, **run_options(**args))


def path(**kw):
    args = dict(lengths=[1.0, -1.0], fractions=F, omegas=W, Pz=0.2, ts=[0.0, 1.0], gamma=0.01)
    args.update(kw)
    return oj.miscidynamic_path(**args)


def kicks(**kw):
    args = dict(gamma=0.01, kick_time=1.0, n_kicks=2)
    args.update(kw)
    return oj.kicked_path([1.0, -1.0], F, W, 0.2, **args)


def with_x64_off(fn):
    def run():
        jax.config.update("jax_enable_x64", False)
        try:
            return fn()
        finally:
            jax.config.update("jax_enable_x64", True)

    return run


def huge_gas():
    big = oj.Gas((600_000_000, 400_000_000), (0.1, 0.2), [UP, [0, 0, -1.0]])
    return gas(big, n_realizations=4)


def corrupt_checkpoint(tmp_path, resume):
    path = tmp_path / "run.ckpt.h5"
    path.write_bytes(b"not an HDF5 file")
    return gas(checkpoint=path, resume=resume)


# (id, call, exception, pattern): the pattern names the argument and what is allowed.
API = [
    # states and the encounter
    ("encounter-long", lambda: oj.encounter([0, 0, 1.1], UP, 0.1), ValueError, r"P_i .*<= 1"),
    ("encounter-nan", lambda: oj.encounter(UP, [np.nan, 0, 0], 0.1), ValueError, r"P_j .*NaN"),
    ("encounter-shape", lambda: oj.encounter([0, 1.0], UP, 0.1), ValueError, r"shape \(\.\.\., 3"),
    ("encounter-c", lambda: oj.encounter(UP, UP, 1j), ValueError, r"c must be real"),
    (
        "encounter-rho",
        lambda: oj.encounter_rho(jnp.zeros((2, 3)), jnp.zeros((2, 3)), 0.1),
        ValueError,
        r"rho_i and rho_j must be square",
    ),
    ("entropy-long", lambda: oj.entropy([1.0, 1.0, 0.0]), ValueError, r"P is unphysical.*<= 1"),
    ("entropy-shape", lambda: oj.entropy([0.5, 0.5]), ValueError, r"P must be .*\(\.\.\., 3\)"),
    ("rho-of-2-vector", lambda: oj.bloch_to_rho([0.0, 1.0]), ValueError, r"P must be .*3"),
    ("bloch-of-3x3", lambda: oj.rho_to_bloch(jnp.eye(3)), ValueError, r"rho must .*\(\.\.\., 2, 2"),
    ("basis", lambda: oj.mixing_vector(0.1, "flavor-ish"), ValueError, r"basis=.*allowed"),
    ("nu-e-basis", lambda: oj.nu_e("energy"), ValueError, r"basis=.*allowed: 'flavour'"),
    # the foreground model
    (
        "fg-float64-no-x64",
        with_x64_off(lambda: foreground(dtype=jnp.float64)),
        ValueError,
        r"dtype=float64 needs jax.config.update\('jax_enable_x64', True\)",
    ),
    ("fg-dtype", lambda: foreground(dtype=jnp.int32), ValueError, r"dtype must be float32 or"),
    ("fg-P0", lambda: foreground(P0=[0, 0, 2.0]), ValueError, r"P0 is unphysical.*<= 1"),
    ("fg-P0-nan", lambda: foreground(P0=[0, 0, np.nan]), ValueError, r"P0 contains NaN"),
    ("fg-P_b-shape", lambda: foreground(P_b=[[1.0, 0, 0]] * 2), ValueError, r"P_b must .*\(3,\)"),
    ("fg-P_b-long", lambda: foreground(P_b=[2.0, 0, 0]), ValueError, r"P_b is unphysical"),
    ("fg-gamma", lambda: foreground(gamma=-0.1), ValueError, r"gamma must be > 0"),
    ("fg-gamma-shape", lambda: foreground(gamma=[0.1]), ValueError, r"gamma must be a scalar"),
    ("fg-mu", lambda: foreground(mu=0.0), ValueError, r"mu must be > 0"),
    ("fg-B", lambda: foreground(B=[0, 0, 2.0]), ValueError, r"B must be a unit vector"),
    ("fg-schedule", lambda: foreground(schedule="stochastic"), ValueError, r"schedule must be"),
    (
        "fg-dt",
        lambda: foreground(schedule=oj.Stochastic(dt=1.0)),
        ValueError,
        r"mu dt / gamma.*<= 1|dt",
    ),
    ("fg-vacuum", lambda: oj.Deterministic(vacuum="outside"), ValueError, r"vacuum=.*allowed"),
    ("fg-both-lengths", lambda: foreground(t_max=1.0), ValueError, r"exactly one of n_steps"),
    ("fg-t_max", lambda: foreground(n_steps=None, t_max=-1.0), ValueError, r"t_max must be > 0"),
    (
        "fg-save-every",
        lambda: foreground(n_steps=10, save_every=3),
        ValueError,
        r"n_steps=10 must be a multiple of the save interval SaveAt.every=3",
    ),
    (
        "fg-save-every-0",
        lambda: foreground(save_every=0),
        ValueError,
        r"SaveAt.every must be .*>= 1",
    ),
    ("fg-n-steps", lambda: foreground(n_steps=0), ValueError, r"n_steps must be an integer >= 1"),
    (
        "fg-realizations",
        lambda: foreground(n_realizations=0),
        ValueError,
        r"n_realizations must be an integer >= 1",
    ),
    (
        "fg-fixed-velocities",
        lambda: foreground(angles="fixed-velocities"),
        ValueError,
        r"not available for the foreground.*'isotropic' or 'fixed-angle'",
    ),
    ("fg-angles", lambda: foreground(angles="sideways"), ValueError, r"angles=.*allowed"),
    ("fg-key", lambda: foreground(key=5), ValueError, r"key must be a PRNG key"),
    ("fg-omega", lambda: foreground(omega=np.inf), ValueError, r"omega contains NaN or inf"),
    # the gas
    ("gas-odd", lambda: oj.Gas((3, 2), W, [UP, UP]), ValueError, r"N = 5.*N even"),
    ("gas-counts", lambda: oj.Gas((0, 2), W, [UP, UP]), ValueError, r"counts must be positive"),
    ("gas-omegas", lambda: oj.Gas((2, 2), [0.1], [UP, UP]), ValueError, r"omegas must have shape"),
    ("gas-P0-shape", lambda: oj.Gas((2, 2), W, [UP] * 3), ValueError, r"P0 must have shape"),
    (
        "gas-P0-long",
        lambda: gas(oj.Gas((2, 2), W, [[0, 0, 1.5], UP])),
        ValueError,
        r"P0 is unphysical",
    ),
    (
        "gas-omegas-nan",
        lambda: gas(oj.Gas((2, 2), [0.1, np.nan], [UP, UP])),
        ValueError,
        r"omegas contains NaN",
    ),
    ("gas-not-a-gas", lambda: gas({"counts": (2, 2)}), ValueError, r"gas must be a Gas"),
    ("gas-dtype", lambda: gas(dtype=jnp.float16), ValueError, r"dtype must be float32 or float64"),
    (
        "gas-float64-no-x64",
        with_x64_off(lambda: gas(dtype=jnp.float64)),
        ValueError,
        r"dtype=float64 needs jax.config.update",
    ),
    ("gas-shards", lambda: gas(shards=3), ValueError, r"shards=3 does not fit.*multiple of"),
    (
        "gas-exchange",
        lambda: oj.simulate_gas(
            oj.Gas((16, 16), W, [UP, UP]),
            system=oj.System(gamma=0.1),
            schedule=STOCH,
            sampling=oj.Sampling(key=KEY, n_steps=4),
            saveat=oj.SaveAt(every=1),
            sharding=oj.Sharding(shards=2, exchange_every=2),
        ),
        ValueError,
        r"SaveAt.every=1 must be a multiple of Sharding.exchange_every=2",
    ),
    ("gas-devices", lambda: gas(devices=99), ValueError, r"devices=99 asks for more devices"),
    ("gas-devices-word", lambda: gas(devices="many"), ValueError, r"devices must be 'all'"),
    (
        "gas-devices-split",
        lambda: gas(n_realizations=3, devices=[jax.devices()[0]] * 2),
        ValueError,
        r"multiple of the number of devices",
    ),
    ("gas-chunks", lambda: gas(chunk_saves=0), ValueError, r"SaveAt.chunk must be an integer >= 1"),
    ("gas-angles", lambda: gas(angles="random"), ValueError, r"angles=.*allowed"),
    ("gas-memory", huge_gas, MemoryError, r"needs about [0-9.]+ GiB of memory.*lower"),
    (
        "gas-corrupt-checkpoint",
        lambda tmp_path: corrupt_checkpoint(tmp_path, resume=True),
        ValueError,
        r"checkpoint=.* is not a readable checkpoint.*delete it",
    ),
    (
        "gas-checkpoint-exists",
        lambda tmp_path: corrupt_checkpoint(tmp_path, resume=False),
        FileExistsError,
        r"Checkpoint.path=.* exists; give Checkpoint\(path, resume=True\)",
    ),
    # sweeps
    ("sweep-empty", lambda: sweep(gamma=[]), ValueError, r"gamma of a sweep is empty"),
    (
        "sweep-lengths",
        lambda: sweep(gamma=[0.1, 0.2, 0.3], mu=[1.0, 2.0]),
        ValueError,
        r"one length.*3 gammas and 2 mus",
    ),
    ("sweep-2d", lambda: sweep(gamma=[[0.1]]), ValueError, r"scalars or 1-d arrays"),
    ("sweep-negative", lambda: sweep(gamma=[0.1, -0.2]), ValueError, r"gamma must be > 0"),
    (
        "sweep-rounds",
        lambda: sweep(schedule=oj.Deterministic(), n_steps=None, t_max=1.0),
        ValueError,
        r"pass n_steps for a sweep",
    ),
    # equilibria and the miscidynamic path
    (
        "eq-fractions-sum",
        lambda: oj.precession_equilibrium([1.0, -1.0], [0.6, 0.6], W, 0.2),
        ValueError,
        r"fractions .*must sum to 1",
    ),
    (
        "eq-fractions-negative",
        lambda: oj.precession_equilibrium([1.0, -1.0], [1.2, -0.2], W, 0.2),
        ValueError,
        r"fractions must be >= 0",
    ),
    (
        "eq-branches-length",
        lambda: oj.equilibrium_branches([1.5, -1.0], F, W, 0.2),
        ValueError,
        r"lengths .*\[-1, 1\]",
    ),
    (
        "eq-shapes",
        lambda: oj.precession_equilibrium([1.0, -1.0], [1.0], W, 0.2),
        ValueError,
        r"one length \(one entry per group\)",
    ),
    (
        "eq-Pz",
        lambda: oj.precession_equilibrium([1.0, -1.0], F, W, 1.5),
        ValueError,
        r"Pz must lie in \[-1, 1\]",
    ),
    (
        "eq-mu",
        lambda: oj.equilibrium_branches([1.0, -1.0], F, W, 0.2, mu=-1.0),
        ValueError,
        r"mu must be > 0",
    ),
    (
        "eq-omegas",
        lambda: oj.precession_equilibrium([1.0, -1.0], F, [0.1, np.nan], 0.2),
        ValueError,
        r"omegas contains NaN",
    ),
    ("path-gamma", lambda: path(gamma=-0.01), ValueError, r"gamma must be > 0"),
    ("path-decreasing", lambda: path(ts=[0.0, 2.0, 1.0]), ValueError, r"ts must be strictly"),
    ("path-backwards", lambda: path(ts=[0.0, -10.0]), ValueError, r"ts must be strictly"),
    ("path-one-save", lambda: path(ts=[0.0]), ValueError, r"at least 2 save times"),
    ("path-rate", lambda: path(rate=-1.0), ValueError, r"rate must be >= 0"),
    ("kicks-count", lambda: kicks(n_kicks=0), ValueError, r"n_kicks must be an integer >= 1"),
    ("kicks-time", lambda: kicks(kick_time=-1.0), ValueError, r"kick_time must be > 0"),
    (
        "gas-state-shape",
        lambda: oj.gas_precession_state(np.arange(5.0), np.zeros((5, 3)), F, W, index=2),
        ValueError,
        r"group_mean must have shape \(len\(ts\), G, 3\)",
    ),
    (
        "gas-state-window",
        lambda: oj.gas_precession_state(
            np.arange(2.0), np.zeros((2, 2, 3)), F, W, index=0, window=1
        ),
        ValueError,
        r"fewer than 3 saves",
    ),
    # many-body and the mean field
    (
        "manybody-size",
        lambda: oj.simulate_manybody(
            oj.Gas((20, 20), W, [UP, [0, 0, -1.0]]),
            system=oj.System(gamma=0.1),
            schedule=STOCH,
            sampling=oj.Sampling(key=KEY, n_steps=1),
        ),
        ValueError,
        r"N <= 30|N = 40",
    ),
    (
        "manybody-mixed",
        lambda: oj.simulate_manybody(
            oj.Gas((2, 2), W, [[0, 0, 0.5], [0, 0, -1.0]]),
            system=oj.System(gamma=0.1),
            schedule=STOCH,
            sampling=oj.Sampling(key=KEY, n_steps=1),
        ),
        ValueError,
        r"\|P_k\| = 1|pure",
    ),
    (
        "meanfield-collision",
        lambda: oj.GroupField(
            jnp.asarray(F),
            jnp.asarray(W),
            oj.System(gamma=jnp.asarray(0.01), mu=jnp.asarray(1.0), B=jnp.asarray([0.0, 0, -1])),
            collision="sometimes",
            n=10,
        ),
        ValueError,
        r"collision=.*allowed",
    ),
    # files
    (
        "h5-exists",
        lambda tmp_path: oj.write_h5(_existing(tmp_path), {"x": np.zeros(2)}),
        FileExistsError,
        r"exists; pass force=True",
    ),
    (
        "h5-missing",
        lambda tmp_path: oj.read_h5(tmp_path / "nothing.h5"),
        FileNotFoundError,
        r"does not exist",
    ),
    (
        "h5-corrupt",
        lambda tmp_path: oj.read_h5(_text_file(tmp_path)),
        ValueError,
        r"corrupt or not an HDF5 file",
    ),
    # Species, ordering, matter, mu(t), beams (physics.md section 10).
    (
        "ordering-unknown",
        lambda: gas(ordering="inverse"),
        ValueError,
        r"ordering='inverse'.*'normal', 'inverted'",
    ),
    (
        "ordering-field",
        lambda: oj.GroupField(
            jnp.ones(1), jnp.ones(1), oj.System(gamma=0.0, mu=1.0, B=jnp.array(UP), ordering="IH")
        ),
        ValueError,
        r"ordering='IH'",
    ),
    (
        "antineutrino-length",
        lambda: oj.Gas((2, 2), (0.1, 0.2), [UP, UP], antineutrino=(True,)),
        ValueError,
        r"antineutrino must be True/False or one bool per group \(2 groups\)",
    ),
    (
        "antineutrino-type",
        lambda: oj.Gas((2, 2), (0.1, 0.2), [UP, UP], antineutrino=("yes", "no")),
        ValueError,
        r"antineutrino must be",
    ),
    ("matter-shape", lambda: gas(matter=[1.0, 2.0]), ValueError, r"matter must be a number"),
    ("matter-nan", lambda: gas(matter=float("nan")), ValueError, r"matter contains NaN"),
    (
        "matter-callable",
        lambda: gas(matter=lambda t: t),
        ValueError,
        r"matter must be a number or a profile.*Samples\(ts, f\(ts\)\)",
    ),
    (
        "matter-L",
        lambda: gas(matter=1.0, L=(0.0, 0.0, 2.0)),
        ValueError,
        r"L must be a unit vector",
    ),
    (
        "matter-inside",
        lambda: gas(matter=1.0, schedule=oj.Deterministic(vacuum="inside")),
        ValueError,
        r"matter with Deterministic\(vacuum='inside'\)",
    ),
    (
        "mu-negative",
        lambda: gas(mu=oj.Samples([0.0, 0.02], [1.0, -1.0])),
        ValueError,
        r"mu\(t\) must be >= 0 at every step; at t = 0.015 it is -0.5",
    ),
    (
        "mu-p-above-1",
        lambda: gas(mu=oj.Exponential(20.0, -1.0)),
        ValueError,
        r"mu\(t\) must be <= 10.*meeting probability",
    ),
    (
        "mu-deterministic",
        lambda: gas(mu=oj.Exponential(1.0, 5.0), schedule=oj.Deterministic()),
        ValueError,
        r"mu as a function of time needs.*Stochastic",
    ),
    (
        "mu-field-deterministic",
        lambda: oj.GroupField(
            jnp.ones(1),
            jnp.ones(1),
            oj.System(gamma=0.1, mu=oj.Exponential(1.0, 1.0), B=jnp.array(UP)),
            collision="deterministic",
        ),
        ValueError,
        r"collision='deterministic' needs mu as a number",
    ),
    (
        "mu-samples-order",
        lambda: gas(mu=oj.Samples([1.0, 0.0], [1.0, 1.0])),
        ValueError,
        r"mu: Samples ts must be strictly increasing",
    ),
    (
        "mu-samples-shape",
        lambda: gas(mu=oj.Samples([0.0, 1.0], [1.0])),
        ValueError,
        r"mu: Samples needs ts and values of the same shape",
    ),
    (
        "mu-exponential-scale",
        lambda: gas(mu=oj.Exponential(1.0, 0.0)),
        ValueError,
        r"mu: Exponential scale must be nonzero",
    ),
    (
        "mu-sweep-profile",
        lambda: sweep(mu=oj.Exponential(1.0, 1.0)),
        ValueError,
        r"mu of a sweep must be numbers",
    ),
    (
        "beams-count",
        lambda: gas(angles=oj.Beams(jnp.array([UP]))),
        ValueError,
        r"Beams directions has 1 directions for a gas of 2 groups",
    ),
    (
        "beams-shape",
        lambda: oj.Beams(jnp.array(UP)),
        ValueError,
        r"Beams directions must have shape \(G, 3\)",
    ),
    (
        "beams-unit",
        lambda: gas(angles=oj.Beams(jnp.array([UP, [0.0, 0.0, 0.5]]))),
        ValueError,
        r"Beams directions must be a unit vector",
    ),
    (
        "beams-foreground",
        lambda: foreground(angles=oj.Beams(jnp.array([UP]))),
        ValueError,
        r"angles=Beams\(\) is not available for the foreground model",
    ),
]


def _existing(tmp_path):
    path = tmp_path / "existing.h5"
    oj.write_h5(path, {"x": np.ones(3)})
    return path


def _text_file(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("plain text")
    return path


def refused(case, tmp_path):
    """An API case `(id, call, exception, pattern)`: `call` (given `tmp_path` if it takes an
    argument) raises `exception` matching `pattern`."""
    _, call, error, pattern = case
    with pytest.raises(error, match=pattern):
        call(tmp_path) if call.__code__.co_argcount else call()


@pytest.mark.parametrize("case", API, ids=[c[0] for c in API])
def test_api_refuses_bad_input(case, tmp_path):
    refused(case, tmp_path)


def test_runtime_checks_name_the_problem():
    """Traced values are checked at run time: the message still names the argument."""
    with pytest.raises(eqx.EquinoxRuntimeError, match="gamma must be > 0"):
        eqx.filter_jit(lambda g: foreground(gamma=g).mean)(-0.1)


# ---------------------------------------------------------------------------------------------
# The command line: exit status 2, the message, no traceback, nothing on disk changed.

TWO = "--fractions 0.6 0.4 --omegas 0.1 0.2"  # two groups
SMALL_GAS = ["--set", "gas.counts=[6, 4]", "--set", "run.t_max=1", "--set", "run.n_saves=3"]


def _snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory holding earlier results, the working directory of the command."""
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    oj.write_h5(results / "earlier.h5", {"x": np.arange(4.0)}, attrs={"kind": "note"})
    (results / "earlier.png").write_bytes(b"\x89PNG earlier figure")
    (results / "folder.h5").mkdir()
    (tmp_path / "bad.toml").write_text("model = [unclosed\n")
    (tmp_path / "gas.checkpoint.h5").write_bytes(b"truncated")
    (tmp_path / "gas.toml").write_text(
        'model = "gas"\n[physics]\ngamma = 0.1\n[run]\nt_max = 1.0\nn_saves = 3\n'
        "[gas]\ncounts = [6, 4]\nomegas = [0.1, 0.2]\nP0 = [[0, 0, 1], [0, 0, -1]]\n"
    )
    return tmp_path


CLI = [
    ("cli-run-directory", ["run", "results"], r"CONFIG='results' is a directory"),
    # Species, ordering, matter, mu(t), beams (physics.md section 10).
    (
        "cli-ordering",
        ["run", "bipolar", "--set", "physics.ordering=inverse"],
        r"physics.ordering.*'normal', 'inverted'",
    ),
    (
        "cli-matter-mass-basis",
        ["run", "two-groups", "--set", "physics.matter=1.0"],
        r"physics.matter.*flavour",
    ),
    (
        "cli-matter-scale-alone",
        ["run", "msw", "--set", "physics.matter=0", "--set", "physics.matter_scale=3"],
        r"physics.matter_scale.*needs a matter potential",
    ),
    (
        "cli-matter-scale-zero",
        ["run", "msw", "--set", "physics.matter_scale=0"],
        r"physics.matter_scale.*nonzero",
    ),
    (
        "cli-matter-manybody",
        ["run", "manybody-small", "--set", "physics.basis=flavour", "--set", "physics.matter=0.5"],
        r"physics.matter.*many-body",
    ),
    (
        "cli-mu-scale-deterministic",
        ["run", "bipolar", "--set", "physics.mu_scale=10"],
        r"physics.mu_scale.*stochastic",
    ),
    (
        "cli-mu-scale-growing",
        ["run", "spectral-split", "--set", "physics.mu_scale=-1", "--set", "run.t_max=60"],
        r"mu\(t\) must be <= 20",
    ),
    (
        "cli-antineutrino-length",
        ["run", "bipolar", "--set", "gas.antineutrino=[true]"],
        r"gas.antineutrino.*one entry per group: 2",
    ),
    (
        "cli-antineutrino-type",
        ["run", "bipolar", "--set", "gas.antineutrino=[1, 0]"],
        r"gas.antineutrino.*true/false",
    ),
    (
        "cli-beams-no-directions",
        ["run", "bipolar", "--set", "physics.angles=beams"],
        r"physics.angles.*'beams' needs gas.directions",
    ),
    (
        "cli-directions-unused",
        ["run", "two-beams", "--set", "physics.angles=isotropic"],
        r"gas.directions.*beams",
    ),
    (
        "cli-directions-unit",
        ["run", "two-beams", "--set", "gas.directions=[[0.0, 0.0, 1.0], [0.0, 0.0, 0.5]]"],
        r"gas.directions.*unit vector",
    ),
    (
        "cli-beams-foreground",
        ["run", "foreground", "--set", "physics.angles=beams"],
        r"physics.angles.*foreground model has none",
    ),
    (
        "cli-foreground-anti-type",
        ["run", "foreground", "--set", "foreground.antineutrino=1"],
        r"foreground.antineutrino.*true or false",
    ),
    (
        "cli-run-unknown-config",
        ["run", "nowhere"],
        r"neither a TOML file nor a preset; the presets",
    ),
    ("cli-run-bad-toml", ["run", "bad.toml"], r"bad.toml is not valid TOML"),
    (
        "cli-run-unknown-key",
        ["run", "foreground", "--set", "physics.g=1"],
        r"physics.g.*unknown key",
    ),
    (
        "cli-run-set-syntax",
        ["run", "foreground", "--set", "gamma"],
        r"--set takes section.key=value",
    ),
    ("cli-run-gamma", ["run", "foreground", "--set", "physics.gamma=-1"], r"physics.gamma.*> 0"),
    ("cli-run-gamma-type", ["run", "foreground", "--set", "physics.gamma=fast"], r"physics.gamma"),
    ("cli-run-saves", ["run", "foreground", "--set", "run.n_saves=1"], r"run.n_saves.*>= 2"),
    ("cli-run-realizations", ["run", "foreground", "--set", "run.n_realizations=0"], r"n_realiz"),
    ("cli-run-dt", ["run", "foreground", "--set", "schedule.dt=1"], r"schedule.dt.*<= gamma / mu"),
    (
        "cli-run-mf-dt",
        ["run", "two-groups-meanfield", "--set", "schedule.dt=0.5"],
        r"schedule.dt.*<= gamma / mu",
    ),
    (
        "cli-run-t-max",
        ["run", "foreground", "--set", "run.t_max=0.001"],
        r"run.t_max = 0.001 .*run.n_saves",
    ),
    ("cli-run-model", ["run", "foreground", "--set", "model=fluid"], r"model.*'foreground'"),
    (
        "cli-run-angles",
        ["run", "foreground", "--set", "physics.angles=up"],
        r"physics.angles.*must be one of",
    ),
    (
        "cli-run-fg-velocities",
        ["run", "foreground", "--set", "physics.angles=fixed-velocities"],
        r"physics.angles.*not available for the foreground",
    ),
    ("cli-run-basis", ["run", "foreground", "--set", "physics.basis=energy"], r"physics.basis"),
    (
        "cli-run-theta",
        ["run", "two-groups", "--set", "physics.theta=0.1"],
        r"physics.theta.*flavour",
    ),
    ("cli-run-odd", ["run", "two-groups", "--set", "gas.counts=[3, 2]"], r"gas.counts.*N even"),
    (
        "cli-run-omegas",
        ["run", "two-groups", "--set", "gas.omegas=[0.1]"],
        r"gas.omegas.*one entry per group",
    ),
    ("cli-run-shards", ["run", "two-groups", *SMALL_GAS, "--set", "gas.shards=3"], r"gas.shards"),
    ("cli-run-unused-key", ["run", "foreground", "--set", "gas.shards=2"], r"gas.shards.*not used"),
    (
        "cli-run-inside-stochastic",
        ["run", "foreground", "--set", "schedule.vacuum=inside"],
        r"schedule.vacuum.*deterministic",
    ),
    (
        "cli-run-manybody-size",
        ["run", "manybody-small", "--set", "gas.counts=[20, 20]"],
        r"gas.counts.*N <= ",
    ),
    (
        "cli-run-out-directory",
        ["run", "foreground", "--out", "results/folder.h5", "--force"],
        r"--out results/folder.h5 is a directory",
    ),
    (
        "cli-run-out-exists",
        ["run", "foreground", "--out", "results/earlier.h5"],
        r"earlier.h5 exists; pass --force",
    ),
    ("cli-run-resume-foreground", ["run", "foreground", "--resume"], r"--resume: only gas runs"),
    (
        "cli-run-devices-word",
        ["run", "two-groups", "--devices", "some"],
        r"--devices takes a positive",
    ),
    (
        "cli-run-devices-many",
        ["run", "gas.toml", "--out", "new.h5", "--devices", "64"],
        r"devices=64 asks for more devices",
    ),
    (
        "cli-run-devices-foreground",
        ["run", "foreground", "--out", "new.h5", "--devices", "1"],
        r"--devices: only gas runs",
    ),
    (
        "cli-run-corrupt-checkpoint",
        ["run", "gas.toml", "--out", "gas.h5"],
        r"gas.checkpoint.h5.* is not a readable checkpoint.*delete it",
    ),
    (
        "cli-run-too-large",
        ["run", "two-groups", "--out", "big.h5", "--set", "gas.counts=[600000000, 400000000]"],
        r"needs about [0-9.]+ GiB of memory.*available",
    ),
    (
        "cli-run-save-state-too-large",
        [
            "run",
            "two-groups",
            "--out",
            "big.h5",
            "--set",
            "run.save_state=true",
            "--set",
            "run.n_realizations=1000",
        ],
        r"needs about [0-9.]+ GiB of memory.*save_state",
    ),
    ("cli-run-coordinator", ["run", "two-groups", "--coordinator", "h:1"], r"go together"),
    ("cli-run-precision", ["run", "foreground", "--precision", "float16"], r"invalid choice"),
    ("cli-config-unknown", ["config", "nowhere"], r"neither a TOML file nor a preset"),
    ("cli-config-key", ["config", "two-groups", "--set", "run.t_maxx=3"], r"run.t_maxx.*unknown"),
    (
        "cli-eq-mu",
        [
            "equilibrium",
            *(f"{TWO} --lengths 1 -1 --Pz 0.2 --mu -1".split()),
        ],
        r"--mu .*> 0",
    ),
    (
        "cli-eq-fractions",
        ["equilibrium", *("--fractions 0.6 0.6 --omegas 0.1 0.2 --lengths 1 -1 --Pz 0.2".split())],
        r"--fractions must be positive and sum to 1",
    ),
    (
        "cli-eq-lengths",
        [
            "equilibrium",
            *(f"{TWO} --lengths 1.5 -1 --Pz 0.2".split()),
        ],
        r"--lengths are signed \|P_g\| <= 1",
    ),
    (
        "cli-eq-Pz",
        ["equilibrium", *(f"{TWO} --lengths 1 -1 --Pz 3".split())],
        r"--Pz .*\[-1, 1\]",
    ),
    (
        "cli-eq-missing",
        ["equilibrium", *(f"{TWO} --lengths 1 -1".split())],
        r"give --Pz",
    ),
    (
        "cli-eq-groups",
        ["equilibrium", *("--fractions 0.6 0.4 --omegas 0.1 --lengths 1 -1 --Pz 0.2".split())],
        r"one value per group",
    ),
    (
        "cli-eq-out-directory",
        [
            "equilibrium",
            *(f"{TWO} --lengths 1 -1 --Pz 0.2 --out results/folder.h5".split()),
        ],
        r"--out results/folder.h5 is a directory",
    ),
    (
        "cli-path-from-gamma",
        ["path", "--from", "results/earlier.h5", "--gamma", "0.5"],
        r"--gamma: not used with --from",
    ),
    (
        "cli-path-from-lengths",
        ["path", "--from", "results/earlier.h5", "--lengths", "1", "-1"],
        r"--lengths: not used with --from",
    ),
    (
        "cli-path-from-other",
        ["path", "--from", "results/earlier.h5", "--out", "p.h5"],
        r"is not a gas run",
    ),
    (
        "cli-path-from-missing",
        ["path", "--from", "results/none.h5", "--out", "p.h5"],
        r"none.h5 does not exist",
    ),
    (
        "cli-path-gamma",
        [
            "path",
            *(f"{TWO} --lengths 1 -1 --Pz 0.2 --gamma -1 --t-max 10".split()),
        ],
        r"--gamma .*> 0",
    ),
    (
        "cli-path-t-max",
        [
            "path",
            *(f"{TWO} --lengths 1 -1 --Pz 0.2 --gamma 0.01 --t-max 0".split()),
        ],
        r"--t-max .*> 0",
    ),
    (
        "cli-path-saves",
        [
            "path",
            *(f"{TWO} --lengths 1 -1 --Pz 0.2 --gamma 0.01 --t-max 1 --n-saves 1".split()),
        ],
        r"--n-saves must be at least 2",
    ),
    (
        "cli-path-missing",
        ["path", *(f"{TWO} --lengths 1 -1 --Pz 0.2".split())],
        r"give --gamma and --t-max",
    ),
    (
        "cli-path-out-exists",
        [
            "path",
            *(
                (
                    f"{TWO} --lengths 1 -1 --Pz 0.2 --gamma 0.01 --t-max 1 --out results/earlier.h5"
                ).split()
            ),
        ],
        r"earlier.h5 exists; pass --force",
    ),
    ("cli-plot-missing", ["plot", "results/none.h5"], r"none.h5 does not exist"),
    ("cli-plot-no-figure", ["plot", "results/earlier.h5", "--out", "e.png"], r"no standard figure"),
    ("cli-plot-not-h5", ["plot", "bad.toml"], r"corrupt or not an HDF5 file"),
    ("cli-plot-exists", ["plot", "results/earlier.h5"], r"earlier.png exists; pass --force"),
    ("cli-bench-p", ["bench", "--p", "2"], r"--p is the meeting probability per step, in \(0, 1\]"),
    ("cli-bench-sizes", ["bench", "--sizes", "0"], r"--sizes are gas sizes N, even and >= 2"),
    ("cli-bench-odd", ["bench", "--sizes", "1001"], r"--sizes are gas sizes N, even"),
    ("cli-bench-repeats", ["bench", "--repeats", "0"], r"--repeats must be at least 1"),
    ("cli-bench-steps", ["bench", "--steps", "0"], r"--steps must be at least 1"),
    (
        "cli-bench-json",
        ["bench", "--json", "results/earlier.h5"],
        r"--json .* exists; pass --force",
    ),
    ("cli-unknown-command", ["simulate"], r"invalid choice: 'simulate'"),
]


def cli_refused(case, folder, capsys):
    """A command-line case `(id, argv, pattern)` run in `folder`: exit status 2, `error:` and
    `pattern` in stderr, no traceback, nothing under `folder` changed."""
    _, argv, pattern = case
    before = _snapshot(folder)
    try:
        status = _cli.main(argv)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "error:" in err and "Traceback" not in err, err
    assert re_search(pattern, err), err
    assert _snapshot(folder) == before


@pytest.mark.parametrize("case", CLI, ids=[c[0] for c in CLI])
def test_cli_refuses_bad_input(case, workdir, capsys):
    cli_refused(case, workdir, capsys)


def re_search(pattern, text) -> bool:
    import re

    return re.search(pattern, text, flags=re.DOTALL) is not None


def test_cli_counts():
    """The issue asks for at least 80 distinct bad inputs over the API and the command line."""
    assert len(API) + len(CLI) >= 80
    assert len({c[0] for c in API + CLI}) == len(API) + len(CLI)


def test_presets_into_a_closed_pipe():
    """`oile presets | head -1`: the reader goes away; no BrokenPipeError traceback."""
    code = "import sys; from oile_jax._app.cli import main; sys.exit(main(['presets']))"
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: the write must fail
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
