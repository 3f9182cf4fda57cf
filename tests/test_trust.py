"""New-user cases over the whole API and command line, newest surface first (species, matter,
profiles, three flavours, stability, gradients, the cache, checkpoints, output): each either is
refused with a message naming the argument (or run-file key, or option) and what is allowed, or
answers right (checked against a closed form or an independent computation). The command-line
cases also assert exit status 2, `error:`, no traceback, and nothing on disk changed.

The faults of the compilation cache are in `tests/test_cache.py`; checkpoint identity in
`tests/test_gas.py` and `tests/test_cli.py`; linear stability's options in
`tests/test_stability.py`."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj
from oile_jax._app import cli as _cli

from .conftest import assert_allclose, run_options, with_system
from .test_bad_input import _snapshot, cli_refused, refused, workdir  # noqa: F401

KEY = jax.random.key(0)
Z = [0.0, 0.0, 1.0]
STOCH = oj.Stochastic(dt=0.01)
GAS = oj.Gas((4, 4), (0.1, 0.2), [[0.1, 0, 0.99], [-0.1, 0, -0.99]])
GAS3 = oj.Gas((2, 2), (0.1, 0.2), [oj.flavour_state("e"), oj.flavour_state("mu")])
FLAVOUR = oj.mixing_vector(0.3, "flavour")


def gas(gas=GAS, **kw):
    args = dict(gamma=0.1, schedule=STOCH, key=KEY, n_steps=4)
    args.update(kw)
    return oj.simulate_gas(gas, **run_options(**args))


def evolve(gas=GAS, **kw):
    args = dict(gamma=0.1, schedule=oj.Deterministic(), key=KEY, n_steps=4)
    args.update(kw)
    return oj.evolve_gas(gas, **run_options(**args))


def foreground(P0=Z, P_b=(1.0, 0.0, 0.0), **kw):
    args = dict(gamma=0.1, schedule=STOCH, key=KEY, n_steps=4)
    args.update(kw)
    return oj.simulate_foreground(P0, P_b, **run_options(**args))


PAIR = oj.Gas((2, 2), (0.1, 0.2), [Z, [0, 0, -1.0]])


def manybody(gas=PAIR, **kw):
    args = dict(gamma=0.1, schedule=STOCH, key=KEY, n_steps=4)
    args.update(kw)
    return oj.simulate_manybody(gas, **run_options(**args))


def groups(**kw):
    args = dict(
        fractions=jnp.asarray([0.6, 0.4]),
        omegas=jnp.asarray([0.1, 0.2]),
        mu=jnp.asarray(1.0),
        gamma=jnp.asarray(0.0),
        B=jnp.asarray([0.0, 0.0, -1.0]),
    )
    args.update(kw)
    return oj.GroupField(**with_system(**args))


def angles(**kw):
    v = np.random.default_rng(0).normal(size=(4, 3))
    args = dict(
        omegas=jnp.ones(4),
        velocities=jnp.asarray(v / np.linalg.norm(v, axis=1, keepdims=True)),
        mu=jnp.asarray(1.0),
        gamma=jnp.asarray(0.0),
        B=jnp.asarray([0.0, 0.0, -1.0]),
    )
    args.update(kw)
    return oj.MultiAngleField(**with_system(**args))


def equilibrium(**kw):
    args = dict(lengths=[0.5, 0.3], fractions=[0.6, 0.4], omegas=[0.1, 0.2], Pz=0.2)
    args.update(kw)
    return oj.precession_equilibrium(**args)


def stability(**kw):
    field = groups(antineutrino=jnp.asarray([False, True]), ordering="inverted")
    args = dict(state=jnp.asarray([Z, Z]))
    args.update(kw)
    return oj.linear_stability(field, **args)


def nan_vector():
    return [0.0, np.nan, 1.0]


# (id, call, exception, pattern): refused, naming the argument and what is allowed.
API = [
    # species and matter
    (
        "matter-mass-basis-gas",
        lambda: gas(oj.Gas(2, [1.0], oj.nu_e("mass", 0.3)[None]), matter=2.0),
        ValueError,
        r"matter acts along L.*commutes with it.*L=nu_e\('mass', theta\)",
    ),
    (
        "matter-mass-basis-groupfield",
        lambda: groups(matter=jnp.asarray(2.0)),
        ValueError,
        r"matter acts along L.*pass L",
    ),
    (
        "matter-mass-basis-multiangle",
        lambda: angles(matter=jnp.asarray(2.0)),
        ValueError,
        r"matter acts along L.*pass L",
    ),
    (
        "matter-mass-basis-foreground",
        lambda: foreground(matter=1.0),
        ValueError,
        r"matter acts along L.*commutes",
    ),
    (
        "matter-three-flavours-mass-default",
        lambda: gas(GAS3, matter=1.0),
        ValueError,
        r"matter acts along L.*flavour_axis\(3\)",
    ),
    (
        "matter-string",
        lambda: gas(matter="high", B=FLAVOUR),
        ValueError,
        r"matter must be a number",
    ),
    ("matter-bool", lambda: gas(matter=True, B=FLAVOUR), ValueError, r"matter must be a number"),
    ("matter-nan", lambda: gas(matter=np.nan, B=FLAVOUR), ValueError, r"matter contains NaN"),
    (
        "matter-vector",
        lambda: gas(matter=[1.0, 2.0], B=FLAVOUR),
        ValueError,
        r"matter must be a number",
    ),
    (
        "matter-L-long",
        lambda: gas(matter=1.0, B=FLAVOUR, L=[0.0, 0.0, 2.0]),
        ValueError,
        r"L must be a unit vector",
    ),
    (
        "matter-L-three-flavours-shape",
        lambda: gas(GAS3, matter=1.0, B=oj.pmns_vacuum(), L=Z),
        ValueError,
        r"L must .*8",
    ),
    ("mu-string", lambda: gas(mu="strong"), ValueError, r"mu must be a number"),
    (
        "antineutrino-length",
        lambda: oj.Gas((4, 4), (0.1, 0.2), [Z, Z], antineutrino=(True,)),
        ValueError,
        r"antineutrino",
    ),  # fmt: skip
    (
        "antineutrino-string",
        lambda: oj.Gas((4, 4), (0.1, 0.2), [Z, Z], antineutrino="yes"),
        ValueError,
        r"antineutrino",
    ),  # fmt: skip
    (
        "ordering-three-flavours",
        lambda: gas(GAS3, ordering="inverted"),
        ValueError,
        r"ordering='inverted'.*three flavours",
    ),
    # profiles
    (
        "exponential-overflow",
        lambda: gas(matter=oj.Exponential(0.6, -0.001), B=FLAVOUR, n_steps=100),
        ValueError,
        r"matter is not finite in float(32|64) during the run: at t = .*growing Exponential",
    ),
    (
        "mu-exponential-overflow",
        lambda: foreground(mu=oj.Exponential(1.0, -0.0001), n_steps=100, gamma=0.5),
        ValueError,
        r"mu is not finite",
    ),
    (
        "samples-nan",
        lambda: gas(matter=oj.Samples([0.0, 1.0], [1.0, np.nan]), B=FLAVOUR),
        ValueError,
        r"matter contains NaN",
    ),
    (
        "mu-function",
        lambda: gas(mu=lambda t: 1.0),
        ValueError,
        r"for a function of time, sample it",
    ),
    # three flavours
    (
        "pmns-mass-angle",
        lambda: oj.pmns_vacuum(basis="mass", theta12=0.3),
        ValueError,
        r"basis='mass'\) has no mixing angles, so theta12 would be ignored",
    ),
    ("pmns-nan", lambda: oj.pmns_vacuum(theta12=np.nan), ValueError, r"theta12 must be a finite"),
    ("pmns-dm2-inf", lambda: oj.pmns_vacuum(dm2_21=np.inf), ValueError, r"dm2_21 must be a finite"),
    ("pmns-basis", lambda: oj.pmns_vacuum(basis="energy"), ValueError, r"basis=.*allowed"),
    ("pmns-ordering", lambda: oj.pmns_vacuum("inverse"), ValueError, r"ordering.*'normal'"),
    (
        "entropy-negative-eigenvalue",
        lambda: oj.von_neumann_entropy([0, 0, 0, 0, 0, 0, 0, 2 / np.sqrt(3)]),
        ValueError,
        r"P is unphysical: .*negative eigenvalue.*-0.333",
    ),
    (
        "entropy-nan",
        lambda: oj.von_neumann_entropy([0.0] * 7 + [np.nan]),
        ValueError,
        r"P must be finite",
    ),  # fmt: skip
    ("entropy-4-vector", lambda: oj.von_neumann_entropy([0.0] * 4), ValueError, r"3 .*8|8 .*3"),
    (
        "P0-mixed-widths",
        lambda: oj.Gas((4, 4), (0.1, 0.2), [Z, [0.0] * 7 + [1.0]]),
        ValueError,
        r"P0 must be an array of Bloch vectors.*all of 3 .* or all of 8",
    ),
    (
        "P0-strings",
        lambda: oj.Gas((4, 4), (0.1, 0.2), [["a", "b", "c"], Z]),
        ValueError,
        r"P0 must be an array of Bloch vectors",
    ),  # fmt: skip
    (
        "manybody-three-flavours",
        lambda: manybody(GAS3),
        ValueError,
        r"many-body model is two-flavour",
    ),
    (
        "flavour-state-name",
        lambda: oj.flavour_state("sterile"),
        ValueError,
        r"flavour=.*allowed",
    ),
    ("flavour-axis-count", lambda: oj.flavour_axis(4), ValueError, r"n_flavours"),
    (
        "three-flavour-B-of-two",
        lambda: gas(GAS3, B=[0.0, 0.0, -1.0]),
        ValueError,
        r"B must be the vacuum vector of the gas's flavours",
    ),
    (
        "three-flavour-unphysical-P0",
        lambda: oj.simulate_gas(
            oj.Gas((2, 2), (0.1, 0.2), [[0.0] * 7 + [2.0], [0.0] * 8]),
            system=oj.System(gamma=0.1),
            schedule=STOCH,
            sampling=oj.Sampling(key=KEY, n_steps=4),
        ),
        ValueError,
        r"P0 is unphysical",
    ),  # fmt: skip
    # mean fields
    (
        "beams-groups",
        lambda: groups(angles=oj.Beams(jnp.eye(3))),
        ValueError,
        r"Beams directions has 3 directions for a field of 2 groups",
    ),
    (
        "groupfield-collision",
        lambda: groups(collision="sometimes"),
        ValueError,
        r"collision=.*allowed",
    ),
    (
        "groupfield-ordering",
        lambda: groups(ordering="upside-down"),
        ValueError,
        r"ordering=.*allowed",
    ),
    (
        "solve-meanfield-shape",
        lambda: oj.solve_meanfield(groups(), jnp.zeros((3, 3)), jnp.linspace(0, 1, 3)),
        ValueError,
        r"P0|shape",
    ),
    # stability
    (
        "stability-horizon-negative",
        lambda: stability(modes=2, horizon=-5.0),
        ValueError,
        r"horizon must be a finite number > 0",
    ),
    ("stability-t-nan", lambda: stability(t=np.nan), ValueError, r"t must be a finite number"),
    (
        "stability-state-nan",
        lambda: stability(state=jnp.asarray([Z, nan_vector()])),
        ValueError,
        r"state contains NaN",
    ),
    (
        "stability-three-groups",
        lambda: stability(state=jnp.asarray([Z, Z, Z])),
        ValueError,
        r"state must have the field's shape \(2, 3\)",
    ),
    (
        "stability-modes-huge",
        lambda: stability(modes=5000),
        ValueError,
        r"modes=5000 needs .* at most 512",
    ),
    (
        "stability-rotation-nan",
        lambda: stability(rotation=(np.nan, jnp.asarray(Z))),
        ValueError,
        r"rotation's Omega must be a finite number",
    ),
    (
        "stability-krylov-alone",
        lambda: stability(krylov=20),
        ValueError,
        r"horizon and krylov are options of the matrix-free method",
    ),
    # gradients and evolve_gas
    (
        "evolve-huge",
        lambda: evolve(oj.Gas((500_000_000, 500_000_000), (0.1, 0.2), [Z, [0, 0, -1.0]])),
        MemoryError,
        r"evolve_gas \(N = 1000000000 .* needs about .* GiB of memory.*lower N",
    ),
    (
        "evolve-grad-gamma-stochastic",
        lambda: jax.grad(lambda g: evolve(gamma=g, schedule=STOCH).group_mean.sum())(0.1),
        ValueError,
        r"no pathwise gradient with respect to gamma",
    ),
    (
        "evolve-checkpoint",
        lambda: evolve(checkpoint="x.h5"),
        TypeError,
        r"checkpoint",
    ),
    # sizes refused before they start
    (
        "foreground-realizations",
        lambda: foreground(n_realizations=3_000_000_000, n_steps=200),
        MemoryError,
        r"this foreground run \(3000000000 realizations .* needs about .* GiB.*n_realizations",
    ),
    (
        "manybody-realizations",
        lambda: manybody(
            oj.Gas((10, 10), (0.1, 0.2), [Z, [0, 0, -1.0]]), n_realizations=100_000_000
        ),
        MemoryError,
        r"this many-body run \(100000000 realizations of N = 20.*GiB",
    ),  # fmt: skip
    (
        "path-saves",
        lambda: oj.miscidynamic_path(
            [1.0, -1.0], [0.6, 0.4], [0.1, 0.2], 0.2, np.linspace(0.0, 1.0, 2_000_000), gamma=0.01
        ),
        ValueError,
        r"ts has 2000000 save times: at most 1000000",
    ),  # fmt: skip
    # checkpoints
    (
        "checkpoint-directory",
        lambda tmp: gas(checkpoint=tmp),
        ValueError,
        r"Checkpoint.path=.* is a directory",
    ),
    (
        "checkpoint-foreign-file",
        lambda tmp: gas(checkpoint=_foreign_h5(tmp), resume=True),
        ValueError,
        r"is not a gas checkpoint",
    ),
    # the key
    ("key-batch", lambda: gas(key=jax.random.split(KEY, 2)), ValueError, r"single PRNG key"),
    # equilibria
    ("equilibrium-fractions", lambda: equilibrium(fractions=[0.6, 0.6]), ValueError, r"fractions"),
    ("equilibrium-nan-Pz", lambda: equilibrium(Pz=np.nan), ValueError, r"Pz"),
    ("equilibrium-lengths-shape", lambda: equilibrium(lengths=[0.5]), ValueError, r"lengths"),
    # output
    (
        "write-h5-object",
        lambda tmp: oj.write_h5(tmp / "x.h5", {"a": object()}),
        ValueError,
        r"data\['a'\] has dtype object",
    ),  # fmt: skip
    (
        "read-h5-missing",
        lambda tmp: oj.read_h5(tmp / "none.h5"),
        FileNotFoundError,
        r"does not exist",
    ),  # fmt: skip
    ("read-h5-text", lambda tmp: oj.read_h5(_text(tmp)), ValueError, r"corrupt or not an HDF5"),
    # run options
    (
        "sweep-gamma-nan",
        lambda: oj.sweep_gas(
            GAS,
            system=oj.System(gamma=[0.1, np.nan]),
            schedule=STOCH,
            sampling=oj.Sampling(key=KEY, n_steps=4),
        ),
        ValueError,
        r"gamma",
    ),  # fmt: skip
    (
        "sweep-gamma-2d",
        lambda: oj.sweep_gas(
            GAS,
            system=oj.System(gamma=[[0.1, 0.2]]),
            schedule=STOCH,
            sampling=oj.Sampling(key=KEY, n_steps=4),
        ),
        ValueError,
        r"gamma",
    ),  # fmt: skip
    (
        "save-every-indivisible",
        lambda: gas(n_steps=10, save_every=3),
        ValueError,
        r"n_steps=10 must be a multiple of the save interval SaveAt.every=3",
    ),  # fmt: skip
    ("dt-negative", lambda: oj.Stochastic(dt=-0.1), ValueError, r"dt"),
    ("dt-nan", lambda: gas(schedule=oj.Stochastic(dt=np.nan)), ValueError, r"dt"),
    ("fixed-angle-nan", lambda: gas(angles=oj.FixedAngle(np.nan)), ValueError, r"theta|angle"),
    ("gas-counts-empty", lambda: oj.Gas((), (), np.zeros((0, 3))), ValueError, r"counts|omegas"),
    (
        "gas-omegas-nan",
        lambda: gas(oj.Gas((4, 4), (np.nan, 0.2), [Z, Z])),
        ValueError,
        r"omegas contains NaN",
    ),  # fmt: skip
    # evolve_gas and its gradients
    (
        "evolve-save-every",
        lambda: evolve(n_steps=10, save_every=3),
        ValueError,
        r"n_steps=10 must be a multiple of the save interval SaveAt.every=3",
    ),  # fmt: skip
    ("evolve-realizations", lambda: evolve(n_realizations=0), ValueError, r"n_realizations"),
    (
        "evolve-schedule-text",
        lambda: evolve(schedule="deterministic"),
        ValueError,
        r"schedule must be",
    ),  # fmt: skip
    (
        "evolve-grad-mu-stochastic",
        lambda: jax.grad(lambda m: evolve(mu=m, schedule=STOCH).group_mean.sum())(1.0),
        ValueError,
        r"no pathwise gradient with respect to mu",
    ),  # fmt: skip
    (
        "evolve-grad-dt-stochastic",
        lambda: jax.grad(lambda d: evolve(schedule=oj.Stochastic(dt=d)).group_mean.sum())(0.01),
        ValueError,
        r"no pathwise gradient with respect to dt",
    ),  # fmt: skip
    (
        "sweep-checkpoint-directory",
        lambda tmp: oj.sweep_gas(
            GAS,
            system=oj.System(gamma=[0.1, 0.2]),
            schedule=STOCH,
            sampling=oj.Sampling(key=KEY, n_steps=4),
            checkpoint=oj.Checkpoint(tmp),
        ),
        ValueError,
        r"Checkpoint.path=.* is a directory",
    ),  # fmt: skip
    # the foreground model in three flavours and with species
    (
        "fg-three-flavours-P_b",
        lambda: foreground(P0=oj.flavour_state("e"), P_b=Z),
        ValueError,
        r"P_b must .*8",
    ),  # fmt: skip
    (
        "fg-antineutrino-text",
        lambda: foreground(antineutrino="yes"),
        ValueError,
        r"antineutrino must be True or False",
    ),  # fmt: skip
    (
        "fg-mean-gamma-nan",
        lambda: oj.foreground_mean(
            jnp.asarray(Z), jnp.asarray([1.0, 0, 0]), jnp.asarray([0.0, 1.0]), gamma=np.nan
        ),
        ValueError,
        r"gamma",
    ),  # fmt: skip
    (
        "foreground-field-collision",
        lambda: oj.ForegroundField(
            jnp.asarray([1.0, 0, 0]),
            jnp.asarray(0.1),
            oj.System(gamma=jnp.asarray(0.1), mu=jnp.asarray(1.0), B=jnp.asarray([0, 0, -1.0])),
            collision="often",
        ),
        ValueError,
        r"collision=.*allowed",
    ),  # fmt: skip
    (
        "groupfield-three-flavours-inverted",
        lambda: oj.solve_meanfield(
            groups(B=oj.pmns_vacuum(), ordering="inverted"),
            jnp.asarray([oj.flavour_state("e"), oj.flavour_state("mu")]),
            jnp.asarray([0.0, 1.0]),
        ),
        ValueError,
        r"ordering='inverted' is two-flavour only",
    ),  # fmt: skip
    (
        "read-h5-foreign",
        lambda tmp: oj.read_h5(_plain_h5(tmp)),
        ValueError,
        r"not an oile_jax result file",
    ),  # fmt: skip
    # states and small functions
    ("encounter-c-nan", lambda: oj.encounter(Z, [1.0, 0, 0], np.nan), ValueError, r"c "),
    ("mixing-vector-nan", lambda: oj.mixing_vector(np.nan), ValueError, r"theta"),
    ("nu-e-nan", lambda: oj.nu_e("mass", np.nan), ValueError, r"theta"),
    ("master-rates-negative", lambda: oj.master_rates(-1.0), ValueError, r"gamma"),
    ("averages-nan", lambda: oj.encounter_averages(np.nan), ValueError, r"gamma"),
    ("pmns-nan-angle", lambda: oj.pmns(np.nan, 0.1, 0.1), ValueError, r"theta12"),
    ("occupations-width", lambda: oj.occupations([0.0] * 5), ValueError, r"3 .*8|8 .*3"),
    ("density-matrix-width", lambda: oj.density_matrix([0.0] * 4), ValueError, r"3 .*8|8 .*3"),
    ("flavour-state-mu-two", lambda: oj.flavour_state("mu", 2), ValueError, r"flavour=.*'e'"),
    (
        "write-h5-slash",
        lambda tmp: oj.write_h5(tmp / "x.h5", {"a/b": np.ones(2)}),
        ValueError,
        r"without '/'",
    ),  # fmt: skip
    (
        "write-h5-exists",
        lambda tmp: oj.write_h5(_foreign_h5(tmp), {"a": np.ones(2)}),
        FileExistsError,
        r"force",
    ),  # fmt: skip
    # mean fields and paths
    (
        "solve-ts-nan",
        lambda: oj.solve_meanfield(groups(), jnp.asarray([Z, Z]), jnp.asarray([0.0, np.nan])),
        ValueError,
        r"ts must be finite",
    ),  # fmt: skip
    (
        "solve-P0-nan",
        lambda: oj.solve_meanfield(
            groups(), jnp.asarray([Z, nan_vector()]), jnp.asarray([0.0, 1.0])
        ),
        ValueError,
        r"P0 must be finite",
    ),  # fmt: skip
    (
        "multiangle-velocities",
        lambda: angles(velocities=jnp.ones((4, 3))),
        ValueError,
        r"velocities .*unit",
    ),  # fmt: skip
    (
        "kicked-zero",
        lambda: oj.kicked_path(
            [0.5, 0.3], [0.6, 0.4], [0.1, 0.2], 0.2, gamma=0.01, kick_time=1.0, n_kicks=0
        ),
        ValueError,
        r"n_kicks must be an integer >= 1",
    ),  # fmt: skip
    (
        "path-ts-decreasing",
        lambda: oj.miscidynamic_path(
            [0.5, 0.3], [0.6, 0.4], [0.1, 0.2], 0.2, [1.0, 0.0], gamma=0.01
        ),
        ValueError,
        r"ts must be strictly increasing",
    ),  # fmt: skip
    (
        "path-gamma-zero",
        lambda: oj.miscidynamic_path(
            [0.5, 0.3], [0.6, 0.4], [0.1, 0.2], 0.2, [0.0, 1.0], gamma=0.0
        ),
        ValueError,
        r"gamma must be > 0",
    ),  # fmt: skip
    (
        "endpoint-guess-nan",
        lambda: oj.endpoint_frequency([0.6, 0.4], [0.1, 0.2], 0.2, guess=np.nan),
        ValueError,
        r"guess",
    ),  # fmt: skip
    (
        "stability-not-stationary",
        lambda: stability(state=jnp.asarray([[1.0, 0, 0], Z])),
        ValueError,
        r"state is not stationary",
    ),  # fmt: skip
]


def _foreign_h5(tmp):
    path = tmp / "foreign.h5"
    oj.write_h5(path, {"x": np.ones(2)}, attrs={"kind": "note"})
    return path


def _plain_h5(tmp):
    import h5py

    path = tmp / "plain.h5"
    with h5py.File(path, "w") as file:
        file["x"] = np.ones(3)
    return path


def _text(tmp):
    path = tmp / "notes.h5"
    path.write_text("plain text")
    return path


@pytest.mark.parametrize("case", API, ids=[c[0] for c in API])
def test_api_refuses(case, tmp_path):
    refused(case, tmp_path)


# (id, call, check): unusual but valid input, answered right.
def _matter_with_L_is_the_msw_value():
    """The issue's case with L given: matter now acts (0.989956 against vacuum 0.706833)."""
    sol = gas(oj.Gas(2, [1.0], oj.nu_e("mass", 0.3)[None]), gamma=0.02, matter=2.0,
              L=oj.nu_e("mass", 0.3), n_steps=1000, dtype=jnp.float64)  # fmt: skip
    flavour = oj.nu_e("mass", 0.3)
    P_ee = 0.5 * (1 + float(np.dot(sol.group_mean[0, -1, 0], flavour)))
    vacuum = gas(oj.Gas(2, [1.0], oj.nu_e("mass", 0.3)[None]), gamma=0.02, n_steps=1000,
                 dtype=jnp.float64)  # fmt: skip
    P_vac = 0.5 * (1 + float(np.dot(vacuum.group_mean[0, -1, 0], flavour)))
    # Both neutrinos of the gas are nu_e: encounters change nothing, vacuum and matter alone
    # (MSW: the matter-frame mixing angle; the reported figures at t = 10).
    assert abs(P_ee - 0.989956) < 1e-5 and abs(P_vac - 0.706833) < 1e-5, (P_ee, P_vac)


def _entropy_of_a_mixed_three_flavour_state():
    P = np.zeros(8)
    P[7] = 1 / np.sqrt(3)  # rho = diag(1/2, 1/2, 0)
    assert abs(float(oj.von_neumann_entropy(P)) - np.log(2)) < 1e-12


def _entropy_tolerates_rounding():
    """An eigenvalue 1e-8 below zero (float32 rounding in a long run) is rounding, not an
    unphysical state: the entropy of the nearby pure state, 0 to 1e-6."""
    P = np.asarray(oj.flavour_state("e"), float) * (1 + 1e-8)
    assert abs(float(oj.von_neumann_entropy(P))) < 1e-6


def _pmns_mass_basis_is_diagonal():
    B = np.asarray(oj.pmns_vacuum(basis="mass"))
    assert np.allclose(B[[0, 1, 3, 4, 5, 6]], 0.0) and abs(B[2]) + abs(B[7]) > 0


def _seed_at_the_64_bit_limit(tmp_path, capsys):
    out = tmp_path / "s.h5"
    status = _cli.main(["run", "foreground", "--set", "run.t_max=1", "--set", "run.n_saves=2",
                        "--seed", str(2**63 - 1), "--out", str(out), "--no-progress"])  # fmt: skip
    assert status == 0 and out.exists(), capsys.readouterr().err


def _encounter_at_zero_angle_is_the_identity():
    P_i, P_j = jnp.asarray([0.6, 0.0, 0.8]), jnp.asarray([0.0, 0.6, -0.8])
    a, b = oj.encounter(P_i, P_j, 0.0)
    assert np.allclose(a, P_i, atol=1e-15) and np.allclose(b, P_j, atol=1e-15)
    a, b = oj.encounter(P_i, P_j, 0.7)  # the sum is conserved at any angle
    assert np.allclose(a + b, P_i + P_j, atol=1e-12)


def _foreground_mean_at_zero_is_P0():
    mean = oj.foreground_mean(jnp.asarray([0.6, 0.0, 0.8]), jnp.asarray([1.0, 0.0, 0.0]),
                              jnp.asarray([0.0, 1.0]), gamma=0.1)  # fmt: skip
    assert np.allclose(mean[0], [0.6, 0.0, 0.8], atol=1e-12)


def _a_lone_group_precesses_at_omega():
    """One group in vacuum (mu P x P = 0): P turns about B at omega, the closed form."""
    field = groups(fractions=jnp.asarray([1.0]), omegas=jnp.asarray([0.7]))
    ts = jnp.linspace(0.0, 3.0, 7)
    P = np.asarray(oj.solve_meanfield(field, jnp.asarray([[0.6, 0.0, 0.8]]), ts).P)[:, 0]
    t = np.asarray(ts)
    # dP/dt = omega B x P with B = -z: a clockwise turn about z at rate omega.
    expected = np.stack([0.6 * np.cos(0.7 * t), -0.6 * np.sin(0.7 * t), 0.8 + 0 * t], -1)
    assert np.allclose(P, expected, atol=1e-7)


def _normal_ordering_is_stable():
    field = groups(antineutrino=jnp.asarray([False, True]))
    assert float(oj.linear_stability(field, jnp.asarray([Z, Z])).growth_rate) < 1e-10


def _maximally_mixed_three_flavours_has_entropy_ln3():
    assert abs(float(oj.von_neumann_entropy(np.zeros(8))) - np.log(3)) < 1e-12
    assert abs(float(np.sum(oj.occupations(oj.flavour_state("mu")))) - 1) < 1e-12


def _pmns_is_unitary():
    U = np.asarray(oj.pmns(0.59, 0.15, 0.85, 1.2))
    assert np.allclose(U @ U.conj().T, np.eye(3), atol=1e-12)


def _a_sweep_is_its_points():
    swept = oj.sweep_gas(
        GAS,
        system=oj.System(gamma=[0.1, 0.2]),
        schedule=STOCH,
        sampling=oj.Sampling(key=KEY, n_steps=4, dtype=jnp.float64),
    )
    for k, g in enumerate((0.1, 0.2)):
        alone = gas(gamma=g, dtype=jnp.float64)
        assert np.allclose(swept[k].group_mean, alone.group_mean, atol=1e-12)


RIGHT = [
    ("encounter-identity", _encounter_at_zero_angle_is_the_identity),
    ("foreground-mean-start", _foreground_mean_at_zero_is_P0),
    ("lone-group-precession", _a_lone_group_precesses_at_omega),
    ("normal-ordering-stable", _normal_ordering_is_stable),
    ("entropy-ln3", _maximally_mixed_three_flavours_has_entropy_ln3),
    ("entropy-rounding", _entropy_tolerates_rounding),
    ("pmns-unitary", _pmns_is_unitary),
    ("sweep-points", _a_sweep_is_its_points),
    ("matter-with-L", _matter_with_L_is_the_msw_value),
    ("entropy-mixed-three-flavours", _entropy_of_a_mixed_three_flavour_state),
    ("pmns-mass-basis", _pmns_mass_basis_is_diagonal),
]


@pytest.mark.parametrize("case", RIGHT, ids=[c[0] for c in RIGHT])
def test_api_answers_right(case):
    case[1]()


# ---------------------------------------------------------------------------------------------
# The command line: exit status 2, `error:`, no traceback, nothing on disk changed.

SMALL = ["--set", "run.t_max=1", "--set", "run.n_saves=3"]

CLI = [
    (
        "cli-seed-huge",
        ["run", "foreground", "--seed", "99999999999999999999"],
        r"config key 'seed': must be <= 9223372036854775807",
    ),  # fmt: skip
    (
        "cli-seed-set-huge",
        ["run", "foreground", "--set", "seed=18446744073709551616"],
        r"config key 'seed': must be <= 9223372036854775807",
    ),  # fmt: skip
    ("cli-seed-negative", ["run", "foreground", "--seed", "-1"], r"'seed': must be >= 0"),
    (
        "cli-config-seed-huge",
        ["config", "foreground", "--seed", "99999999999999999999"],
        r"'seed': must be <=",
    ),  # fmt: skip
    (
        "cli-matter-growing",
        ["run", "msw", "--set", "physics.matter_scale=-0.001"],
        r"config key 'physics.matter_scale': = -0.001 makes physics.matter grow .* overflows "
        r"float32",
    ),
    (
        "cli-mu-growing-overflow",
        ["run", "spectral-split", "--set", "physics.mu_scale=-0.5"],
        r"physics.mu_scale.*overflows",
    ),
    (
        "cli-plot-no-group-mean",
        ["plot", "results/partial.h5", "--out", "results/p.png"],
        r"results/partial.h5 lacks '(model|group_mean)', a dataset",
    ),  # fmt: skip
    (
        "cli-plot-broken-config",
        ["plot", "results/broken.h5", "--out", "results/p.png"],
        r"results/broken.h5: its attribute 'config' is not valid JSON",
    ),  # fmt: skip
    (
        "cli-path-no-groups",
        ["path", "--from", "results/partial.h5", "--out", "results/p.h5"],
        r"results/partial.h5 lacks 'groups'",
    ),  # fmt: skip
    (
        "cli-path-nan",
        ["path", "--from", "results/nan.h5", "--start", "1", "--out", "results/p.h5"],
        r"results/nan.h5: dataset 'group_mean' holds NaN",
    ),  # fmt: skip
    (
        "cli-path-broken-config",
        ["path", "--from", "results/broken.h5", "--out", "results/p.h5"],
        r"its attribute 'config' is not valid JSON",
    ),  # fmt: skip
    (
        "cli-path-saves",
        [
            "path",
            "--fractions",
            "0.6",
            "0.4",
            "--omegas",
            "0.1",
            "0.2",
            "--lengths",
            "1",
            "-1",
            "--Pz",
            "0.2",
            "--gamma",
            "0.01",
            "--t-max",
            "1",
            "--n-saves",
            "100000000",
            "--out",
            "results/p.h5",
        ],
        r"--n-saves must be .* at most 1000000",
    ),  # fmt: skip
    (
        "cli-foreground-realizations",
        ["run", "foreground", "--set", "run.n_realizations=3000000000"],
        r"needs about .* GiB",
    ),
    (
        "cli-manybody-realizations",
        ["run", "manybody-small", "--set", "run.n_realizations=100000000"],
        r"needs about .* GiB",
    ),
    (
        "cli-out-under-a-file",
        ["run", "foreground", *SMALL, "--out", "results/earlier.h5/x.h5"],
        r"results/earlier.h5 is a file, not a directory",
    ),  # fmt: skip
    (
        "cli-gas-matter-mass-basis",
        ["run", "two-groups", "--set", "physics.matter=1.0"],
        r"physics.matter",
    ),
    (
        "cli-three-flavours-pmns-nan",
        ["run", "three-flavours", "--set", "physics.theta12=nan"],
        r"physics.theta12",
    ),
    ("cli-counts-odd", ["run", "two-groups", "--set", "gas.counts=[3, 4]"], r"gas.counts|even"),
    ("cli-gamma-nan", ["run", "foreground", "--set", "physics.gamma=nan"], r"physics.gamma"),
    ("cli-mu-inf", ["run", "foreground", "--set", "physics.mu=inf"], r"physics.mu"),
    ("cli-dt-zero", ["run", "foreground", "--set", "schedule.dt=0"], r"schedule.dt"),
    (
        "cli-schedule-kind",
        ["run", "foreground", "--set", "schedule.kind=random"],
        r"schedule.kind",
    ),  # fmt: skip
    ("cli-precision-set", ["run", "foreground", "--set", "precision=float16"], r"precision"),
    (
        "cli-gas-P0-long",
        ["run", "two-groups", "--set", "gas.P0=[[0, 0, 2], [0, 0, -1]]"],
        r"gas.P0",
    ),  # fmt: skip
    (
        "cli-flavours-four",
        ["run", "two-groups", "--set", "physics.n_flavours=4"],
        r"physics.n_flavours",
    ),  # fmt: skip
    ("cli-counts-empty", ["run", "two-groups", "--set", "gas.counts=[]"], r"gas.counts"),
    (
        "cli-equilibrium-fractions",
        [
            "equilibrium",
            "--fractions",
            "0.6",
            "0.5",
            "--omegas",
            "0.1",
            "0.2",
            "--lengths",
            "1",
            "-1",
            "--Pz",
            "0.2",
        ],
        r"fractions",
    ),  # fmt: skip
    (
        "cli-equilibrium-lengths",
        [
            "equilibrium",
            "--fractions",
            "0.6",
            "0.4",
            "--omegas",
            "0.1",
            "0.2",
            "--lengths",
            "1",
            "--Pz",
            "0.2",
        ],
        r"lengths",
    ),  # fmt: skip
    (
        "cli-path-from-missing",
        ["path", "--from", "results/none.h5", "--out", "results/p.h5"],
        r"does not exist",
    ),  # fmt: skip
    (
        "cli-plot-out-directory",
        ["plot", "results/partial.h5", "--out", "results"],
        r"is a directory",
    ),  # fmt: skip
    ("cli-config-missing-file", ["config", "missing.toml"], r"missing.toml"),
    (
        "cli-equilibrium-Pz",
        [
            "equilibrium",
            "--fractions",
            "0.6",
            "0.4",
            "--omegas",
            "0.1",
            "0.2",
            "--lengths",
            "1",
            "-1",
            "--Pz",
            "2",
        ],
        r"Pz",
    ),  # fmt: skip
    (
        "cli-path-from-not-gas",
        ["path", "--from", "results/earlier.h5", "--out", "results/p.h5"],
        r"is not a gas run",
    ),  # fmt: skip
    (
        "cli-three-flavours-ordering",
        ["run", "three-flavours", "--set", "physics.ordering=upside"],
        r"physics.ordering",
    ),  # fmt: skip
    ("cli-msw-matter-nan", ["run", "msw", "--set", "physics.matter=nan"], r"physics.matter"),
    ("cli-run-unknown-section", ["run", "unknown.toml"], r"unknown|physic"),
]


@pytest.fixture
def results(workdir):  # noqa: F811 (the fixture imported above)
    """`workdir` with partial, broken and NaN result files besides the earlier ones."""
    folder = workdir / "results"
    (workdir / "unknown.toml").write_text('model = "foreground"\n[physic]\ngamma = 0.1\n')
    config = '{"physics": {"gamma": 0.1, "mu": 1.0, "basis": "mass"}}'
    oj.write_h5(folder / "partial.h5", {"ts": np.arange(3.0)},
                attrs={"kind": "run", "model": "gas", "config": config})  # fmt: skip
    oj.write_h5(folder / "broken.h5", {"ts": np.arange(3.0)},
                attrs={"kind": "run", "model": "gas", "config": "{broken"})  # fmt: skip
    nan = np.full((3, 2, 3), np.nan)
    oj.write_h5(
        folder / "nan.h5",
        {"ts": np.arange(3.0), "group_mean": nan, "group_std": nan, "group_length": nan[..., 0],
         "entropy": nan[..., 0], "groups": {"fractions": np.ones(2) / 2, "omegas": np.ones(2)}},
        attrs={"kind": "run", "model": "gas", "config": config},
    )  # fmt: skip
    return workdir


@pytest.mark.parametrize("case", CLI, ids=[c[0] for c in CLI])
def test_cli_refuses(case, results, capsys):
    cli_refused(case, results, capsys)


def test_cli_seed_at_the_64_bit_limit_runs(tmp_path, capsys):
    _seed_at_the_64_bit_limit(tmp_path, capsys)


def test_output_without_room_is_refused_before_the_run(results, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 1000, 1000))
    before = _snapshot(results)
    status = _cli.main(["run", "foreground", *SMALL, "--out", "results/fg.h5"])
    err = capsys.readouterr().err
    assert status == 2 and "the output results/fg.h5 needs about" in err, err
    assert "GiB are free" in err and _snapshot(results) == before


def test_two_runs_on_one_output_the_second_refused_at_its_start(results, capsys):
    from oile_jax._app.runner import output_lock

    out = results / "results" / "fg.h5"
    before = _snapshot(results)
    with output_lock(out):
        status = _cli.main(["run", "foreground", *SMALL, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and "another run is writing it" in err, err
    assert _snapshot(results) == before  # the lock is gone with its holder


def test_a_figure_that_fails_leaves_no_temporary_file(results, capsys, monkeypatch):
    import matplotlib.figure

    out = results / "results" / "fg.h5"
    assert _cli.main(["run", "foreground", *SMALL, "--out", str(out)]) == 0
    before = _snapshot(results)

    def full_disk(self, *args, **kwargs):
        with open(args[0], "wb") as file:
            file.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
    status = _cli.main(["plot", str(out), "--out", str(results / "results" / "fg.png")])
    assert status == 2 and "No space left" in capsys.readouterr().err
    assert _snapshot(results) == before


@pytest.mark.long  # subprocesses, about 30 s: make test-long, in CI
def test_ctrl_c_at_any_moment_ends_cleanly(tmp_path):
    """SIGINT at several moments from the start of the `oile` console script (while the library
    loads, while the run compiles and runs): status 130 and never a traceback. (Before the
    package's first line runs, in the interpreter's own start-up, about 0.05 s on an idle
    machine, Python's default handler still prints its traceback: no code of ours runs yet.)"""
    import shutil
    import signal
    import time

    script = shutil.which("oile", path=str(os.path.dirname(sys.executable)))
    for delay in (0.6, 1.2, 2.0, 3.5):
        process = subprocess.Popen(
            [script, "run", "foreground", "--out", str(tmp_path / "fg.h5"), "--force"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        assert process.returncode in (130, -signal.SIGINT, 0), (delay, err)
        assert "Traceback" not in err, (delay, err)


def test_an_output_directory_that_cannot_be_written_is_refused_before_the_run(
    results, capsys, monkeypatch
):
    """The probe file fails as in a read-only directory (this suite may run as root, for whom
    permission bits do not stop a write): refused before anything is computed."""
    import tempfile

    from oile_jax._foreground import model as _foreground

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(_foreground, "_run", lambda *a: pytest.fail("the run started"))
    before = _snapshot(results)
    status = _cli.main(["run", "foreground", *SMALL, "--out", "results/fg.h5"])
    err = capsys.readouterr().err
    assert status == 2 and "--out results/fg.h5: its directory cannot be written" in err, err
    assert _snapshot(results) == before


def test_matter_along_the_default_axis_inside_jit():
    """Matter along the default `L` in a traced run (`evolve_gas` under `jax.jit`): the check
    that `L` does not commute with `B` reads no traced value (it raised a
    TracerArrayConversionError), and the traced run gives the numbers of the eager one."""
    gas = oj.Gas([2, 2], jnp.asarray([0.1, 0.2]), jnp.asarray([[0.0, 0, 1], [0, 0, -1.0]]))
    B = oj.mixing_vector(0.3)  # concrete, made outside the trace: the check reads it

    def run(P0):
        return oj.evolve_gas(
            oj.Gas(gas.counts, gas.omegas, P0),
            system=oj.System(gamma=0.1, B=B, matter=0.2),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=jax.random.key(0), n_steps=2),
        ).group_mean

    assert_allclose(jax.jit(run)(gas.P0), run(gas.P0), rtol=0, atol=1e-6)
