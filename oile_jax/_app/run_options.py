"""A resolved run file (`_config`) built into the library's objects, once (`build`): the
precision, the vacuum direction, the schedule and the run's length, the gas, the coupling's
history, the matter term, the angle model and the encounter (physics.md sections 4 and 10).

Each object is built here and nowhere else, and checked as it is built by the library's own
rules, whose errors name the TOML key: the `System` is bound to the model's classes here
(`System.bind`, the one check of `gamma`, `mu`, `B`, matter and `L`; an `OptionError` names the
option, and the schema's `Key.shapes` the key that sets it), and the drivers take the bound
system as it is. The runner passes these objects on and reads no physics of the file itself."""

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._gas import Gas
from .._physics.flavours import pmns_vacuum
from .._physics.opacities import AbstractOpacities, Opacities, Reemission
from .._physics.profiles import Exponential
from .._physics.states import mixing_vector
from .._physics.system import System
from .._sampling.angles import Beams, angle_model, fresh_angle_model
from .._sampling.options import Sampling, SaveAt, Sharding
from .._sampling.schedule import AbstractSchedule, Deterministic, Stochastic
from .._support.checks import OptionError, check_dtype
from .config import ConfigError, fail, library
from .schema import SCHEMA


def run_dtype(config):
    return check_dtype(config["precision"], "precision")


def n_flavours(config) -> int:
    return config["physics"].get("n_flavours", 2)


def vacuum_direction(config, dtype):
    """`B`: the two-flavour unit vector of `physics.theta`, or for three flavours the PMNS
    vacuum vector of the ordering, angles and splittings (physics.md section 11)."""
    physics = config["physics"]
    if n_flavours(config) == 3:
        names = ("theta12", "theta13", "theta23", "delta", "dm2_21", "dm2_3l")
        basis = "mass" if physics["basis"] == "mass" else "flavour"
        return pmns_vacuum(
            physics["ordering"], basis, **{k: physics[k] for k in names}, dtype=dtype
        )
    return mixing_vector(physics["theta"], physics["basis"], dtype=dtype)


def run_schedule(config):
    """The schedule. Without `schedule.dt` the stochastic step is the largest one, at most
    `gamma / mu`, that ends the run exactly at `run.t_max` after whole save intervals."""
    physics, schedule, run = config["physics"], config["schedule"], config["run"]
    if schedule["kind"] == "deterministic":
        return Deterministic(vacuum=schedule["vacuum"])
    if schedule["dt"] is not None:
        return Stochastic(dt=schedule["dt"])
    intervals = run["n_saves"] - 1
    steps = intervals * math.ceil(run["t_max"] * physics["mu"] / physics["gamma"] / intervals)
    return Stochastic(dt=run["t_max"] / steps)


def saving(config, schedule) -> tuple[int, int]:
    """`(n_steps, save_every)` for `run.t_max` and `run.n_saves`: whole steps of the schedule
    per save interval, ending at `run.t_max`; a `run.t_max` the schedule cannot end at (to 1e-6)
    is refused, naming the nearest lengths it can."""
    physics, run = config["physics"], config["run"]
    tau = float(np.asarray(schedule.step_length(physics["gamma"], physics["mu"])))
    intervals = run["n_saves"] - 1
    save_every = round(run["t_max"] / tau / intervals)
    if save_every < 1 or abs(save_every * intervals * tau - run["t_max"]) > 1e-6 * run["t_max"]:
        stochastic = config["schedule"]["kind"] == "stochastic"
        step = "schedule.dt" if stochastic else "a round, gamma / mu,"
        options = sorted({max(1, save_every), max(1, save_every) + 1} - {0})
        nearest = " or ".join(f"{k * intervals * tau:g}" for k in options)
        raise ConfigError(
            f"run.t_max = {run['t_max']:g} is not a whole number of steps per save: "
            f"{step} = {tau:g} and run.n_saves = {run['n_saves']} ({intervals} intervals) give "
            f"run lengths that are multiples of {intervals * tau:g}; set run.t_max = {nearest}, "
            "or change run.n_saves"
        )
    return save_every * intervals, save_every


def run_gas_groups(config, dtype) -> Gas:
    gas = config["gas"]
    return Gas(
        gas["counts"],
        jnp.asarray(gas["omegas"], dtype),
        jnp.asarray(gas["P0"], dtype),
        antineutrino=tuple(gas["antineutrino"] or (False,) * len(gas["counts"])),
    )


def coupling_profile(value, scale):
    """A coupling of the run file: a number, or `value exp(-t / scale)`."""
    return value if scale is None else Exponential(value, scale)


def angle_option(config):
    physics = config["physics"]
    if physics["angles"] == "beams":
        return Beams(jnp.asarray(config["gas"]["directions"], run_dtype(config)))
    return physics["angles"]


def run_system(config, dtype, angles) -> System:
    """The run file's physics as a `System` (unbound): `physics.gamma`, the coupling and its
    history, the vacuum vector, the mass ordering (three flavours: in `B`), matter, the angle
    model `angles` and the encounter (physics.md section 10)."""
    physics = config["physics"]
    matter = physics["matter"]
    return System(
        gamma=physics["gamma"],
        mu=coupling_profile(physics["mu"], physics["mu_scale"]),
        B=vacuum_direction(config, dtype),
        angles=angles,
        matter=None if matter == 0 else coupling_profile(matter, physics["matter_scale"]),
        ordering=physics["ordering"] if n_flavours(config) == 2 else "normal",
        encounter=physics["encounter"],
        opacities=run_opacities(config, dtype),
    )


def run_opacities(config, dtype, ids=None) -> AbstractOpacities | None:
    """`physics.opacities` with its tables `gas.rates`, `gas.equilibria` (one row per group;
    `ids`: one row per neutrino, of its group) and, for the kinetic term, `gas.scattering`:
    `Reemission` or `Opacities`."""
    kind = config["physics"].get("opacities", "none")
    if kind == "none":
        return None
    gas = config["gas"]
    rows = lambda x: None if x is None else jnp.asarray(np.asarray(x, dtype)[ids])
    if ids is None:
        rows = lambda x: None if x is None else jnp.asarray(np.asarray(x, dtype))
    kind = Reemission if kind == "reemission" else Opacities
    return kind(rows(gas["rates"]), rows(gas["equilibria"]), scattering=rows(gas.get("scattering")))


def run_sampling(config, schedule, key, dtype) -> tuple[Sampling, SaveAt]:
    """How an encounter simulation (foreground, gas, many-body) samples and saves:
    `run.n_realizations`, the whole steps per save interval ending at `run.t_max`
    (`saving`), `run.save_state` and `run.chunk_saves` (gas runs)."""
    run = config["run"]
    n_steps, save_every = saving(config, schedule)
    sampling = Sampling(key, n_steps=n_steps, n_realizations=run["n_realizations"], dtype=dtype)
    saveat = SaveAt(
        every=save_every,
        state=bool(run.get("save_state", False)),
        chunk=run.get("chunk_saves"),
    )
    return sampling, saveat


def group_tables(gas: Gas) -> dict:
    return {
        "counts": np.asarray(gas.counts),
        "fractions": gas.fractions,
        "omegas": np.asarray(gas.omegas),
        "antineutrino": np.asarray(gas.antineutrino),
    }


def option_keys(option: str) -> list[str]:
    """The run-file keys that set a `System` option: those whose schema entry `shapes` it
    (`gamma` -> `physics.gamma`; `B` -> the vacuum's keys)."""
    return [key for key, entry in SCHEMA.items() if option in entry.shapes] or [option]


def bound(system: System, omegas, antineutrino, n_flavours: int, dtype) -> System:
    """`system` bound to the model's classes (`System.bind`, its one check), its errors naming
    the run-file keys of the option."""
    try:
        return system.bind(omegas, antineutrino, n_flavours=n_flavours, dtype=dtype)
    except OptionError as error:
        keys = option_keys(error.option)
        if len(keys) == 1:
            fail(keys[0], str(error))
        raise ConfigError(
            f"config keys {', '.join(map(repr, keys))} (they set {error.option}): {error}"
        ) from None


@dataclasses.dataclass(frozen=True)
class RunObjects:
    """A run file as the library's objects, built once (`build`).

    - `config`: the resolved run file it was built from (written beside the results);
    - `dtype`, `key` (from `seed`);
    - `system`: the `System`, bound to the model's classes (the gas's groups, the foreground
      neutrino, the mean field's groups or angles);
    - `schedule`, `sampling`, `saveat`: how the encounters are sampled and saved (None for the
      mean field);
    - `gas`: the `Gas` (None for the foreground);
    - `sharding`: the gas's shards (`Sharding`, its devices given by the command line);
    - `field`, `ts`: the mean field and its save times (mean field only)."""

    config: dict
    dtype: Any
    key: Any
    system: System
    schedule: AbstractSchedule | None = None
    sampling: Sampling | None = None
    saveat: SaveAt | None = None
    gas: Gas | None = None
    sharding: Sharding | None = None
    field: Any = None
    ts: Any = None

    @property
    def model(self) -> str:
        return self.config["model"]


def build(config: dict) -> RunObjects:
    """The resolved run file `config` as the library's objects, each built and checked once."""
    from .._gas.sharded import check_shards
    from .._manybody.statevector import check_manybody_schedule

    model, physics = config["model"], config["physics"]
    dtype = run_dtype(config)
    key = jax.random.key(config["seed"])
    n = n_flavours(config)
    beams = physics["angles"] == "beams"
    angles = library(
        "gas.directions" if beams else "physics.angles",
        lambda: angle_model(angle_option(config)),
    )
    system = run_system(config, dtype, angles)
    if model == "meanfield":
        return _meanfield(config, dtype, key, system)
    schedule = library("schedule.dt", lambda: run_schedule(config))
    if model == "foreground":
        library("physics.angles", lambda: fresh_angle_model(system.angles))
        fg = config["foreground"]
        system = bound(system, [fg["omega"]], fg["antineutrino"], n, dtype)
        gas = None
    else:
        if beams:
            library("gas.directions", lambda: angles.for_gas(tuple(config["gas"]["counts"])))
        gas = library("gas.counts", lambda: run_gas_groups(config, dtype))
        system = bound(system, gas.omegas, gas.antineutrino, n, dtype)
    library("schedule.dt", lambda: schedule.checked(system.gamma, system.mu, dtype))
    if model == "manybody":
        library("schedule.vacuum", lambda: check_manybody_schedule(schedule))
    sampling, saveat = run_sampling(config, schedule, key, dtype)
    sharding = None
    if model == "gas":
        sharding = Sharding(
            shards=config["gas"]["shards"] or None, exchange_every=config["gas"]["exchange_every"]
        )
        if sharding.shards:
            library("gas.shards", lambda: check_shards(sharding, gas.n, 1))
    return RunObjects(
        config, dtype, key, system, schedule, sampling, saveat, gas=gas, sharding=sharding
    )


def _meanfield(config, dtype, key, system) -> RunObjects:
    """The mean field of the run file's gas: its groups (`GroupField`, for angle models of
    groups) or its angles (`MultiAngleField`, fixed velocities: those of realization 0 of the
    gas run with the same seed), with the run file's collision term."""
    from .._gas.model import realization_velocities
    from .._meanfield.fields import GroupField, MultiAngleField

    physics, run, mf = config["physics"], config["run"], config["meanfield"]
    gas = library("gas.counts", lambda: run_gas_groups(config, dtype))
    n = n_flavours(config)
    if physics["gamma"] is None:
        # `physics.gamma` is used by the collision terms only; without one it is left out, and
        # the system takes 1 in its place (no term reads it).
        system = dataclasses.replace(system, gamma=1.0)
    step = config["schedule"]["dt"]  # used by the stochastic collision term only
    dt = None if step is None else jnp.asarray(step, dtype)
    anti = np.asarray(gas.antineutrino)
    if system.angles.by_group:
        library("gas.directions", lambda: system.angles.group_diagonal(gas.n_groups))
        system = bound(system, gas.omegas, anti, n, dtype)
        # The kinetic term's occupations change their numbers: the field of an infinite gas
        # (a finite gas's self-pair is counted per neutrino).
        finite = None if physics["opacities"] == "kinetic" else gas.n
        field = GroupField(
            jnp.asarray(gas.fractions, dtype), gas.omegas, system, mf["collision"], finite,
            dt=dt, antineutrino=anti,
        )  # fmt: skip
    else:
        ids = gas.group_ids()
        velocities = realization_velocities(system.angles, key, 1, gas.n, dtype)[0]
        system = dataclasses.replace(
            system, angles="isotropic", opacities=run_opacities(config, dtype, ids)
        )
        system = bound(system, gas.omegas[ids], anti[ids], n, dtype)
        field = MultiAngleField(
            gas.omegas[ids], velocities, system, mf["collision"], dt=dt, antineutrino=anti[ids]
        )
    if dt is not None:
        library("schedule.dt", lambda: Stochastic(dt=dt).checked(system.gamma, system.mu, dtype))
    ts = jnp.linspace(0.0, run["t_max"], run["n_saves"], dtype=dtype)
    return RunObjects(config, dtype, key, system, gas=gas, field=field, ts=ts)
