"""What a resolved run file (`_config`) means as the simulators' arguments: precision, vacuum
direction, schedule and run length, the gas, the coupling's history, the matter term and the
angle model (physics.md sections 4 and 10)."""

import math

import jax.numpy as jnp
import numpy as np

from .._gas import Gas
from .._physics.flavours import pmns_vacuum
from .._physics.profiles import Exponential
from .._physics.states import mixing_vector
from .._physics.system import System
from .._sampling.angles import Beams, angle_model
from .._sampling.options import Sampling, SaveAt
from .._sampling.schedule import Deterministic, Stochastic
from .._support.checks import check_dtype
from .config import ConfigError


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


def run_system(config, dtype) -> System:
    """The run file's physics as a `System`: `physics.gamma`, the coupling and its history,
    the vacuum vector, the mass ordering (three flavours: in `B`), matter, the angle model and
    the encounter (physics.md section 10)."""
    physics = config["physics"]
    matter = physics["matter"]
    return System(
        gamma=physics["gamma"],
        mu=coupling_profile(physics["mu"], physics["mu_scale"]),
        B=vacuum_direction(config, dtype),
        angles=angle_model(angle_option(config)),
        matter=None if matter == 0 else coupling_profile(matter, physics["matter_scale"]),
        ordering=physics["ordering"] if n_flavours(config) == 2 else "normal",
        encounter=physics["encounter"],
    )


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
