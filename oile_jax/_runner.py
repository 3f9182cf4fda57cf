"""Run a resolved configuration (see `_config`) and write its HDF5 result.

Every model writes `ts` and its saved observables; the root attributes hold `kind = "run"`, the
model, the resolved configuration (JSON and TOML) and the provenance of `write_h5`. Gas runs
write a checkpoint beside the output after every chunk; an interrupted run continues from it
with `resume=True` and gives exactly the numbers of an uninterrupted run.
"""

import json
import math
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._angles import Beams, FixedVelocities, Isotropic
from ._checks import check_dtype
from ._config import ConfigError, dumps
from ._gas import Gas, observe
from ._gas.checkpoint import CheckpointMismatch, read_checkpoint
from ._gas.model import realization_velocities
from ._io import write_h5
from ._profile import AbstractProfile, Exponential
from ._schedule import Deterministic, Stochastic
from ._sharding import is_main_process
from ._state import mixing_vector


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.stem + ".checkpoint.h5")


def _dtype(config):
    return check_dtype(config["precision"], "precision")


def _vacuum(config, dtype):
    physics = config["physics"]
    return mixing_vector(physics["theta"], physics["basis"], dtype=dtype)


def _schedule(config):
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


def _saving(config, schedule) -> tuple[int, int]:
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


def _gas(config, dtype) -> Gas:
    gas = config["gas"]
    return Gas(
        gas["counts"],
        jnp.asarray(gas["omegas"], dtype),
        jnp.asarray(gas["P0"], dtype),
        antineutrino=tuple(gas["antineutrino"] or (False,) * len(gas["counts"])),
    )


def _profile(value, scale):
    """A coupling of the run file: a number, or `value exp(-t / scale)`."""
    return value if scale is None else Exponential(value, scale)


def _history(config) -> dict:
    """The mass ordering, the coupling's history and the matter term (physics.md section 10),
    as the keyword arguments of the simulators (none for defaults)."""
    physics = config["physics"]
    options = {"mu": _profile(physics["mu"], physics["mu_scale"])}
    if physics["ordering"] != "normal":
        options["ordering"] = physics["ordering"]
    if physics["matter"] != 0:
        options["matter"] = _profile(physics["matter"], physics["matter_scale"])
    return options


def _angles(config):
    physics = config["physics"]
    if physics["angles"] == "beams":
        return Beams(jnp.asarray(config["gas"]["directions"], _dtype(config)))
    return physics["angles"]


def _sampling(config, key, dtype) -> dict:
    """The arguments every encounter simulation (foreground, gas, many-body) takes alike."""
    physics = config["physics"]
    schedule = _schedule(config)
    n_steps, save_every = _saving(config, schedule)
    return dict(
        gamma=physics["gamma"],
        B=_vacuum(config, dtype),
        schedule=schedule,
        angles=_angles(config),
        key=key,
        n_steps=n_steps,
        save_every=save_every,
        n_realizations=config["run"]["n_realizations"],
        dtype=dtype,
        **_history(config),
    )


def _groups(gas: Gas) -> dict:
    return {
        "counts": np.asarray(gas.counts),
        "fractions": gas.fractions,
        "omegas": np.asarray(gas.omegas),
        "antineutrino": np.asarray(gas.antineutrino),
    }


def run_foreground(config, key, progress):
    from ._foreground import simulate_foreground
    from ._master import foreground_mean

    dtype = _dtype(config)
    physics, fg = config["physics"], config["foreground"]
    sampling = _sampling(config, key, dtype)
    schedule, B = sampling["schedule"], sampling["B"]
    sol = simulate_foreground(
        jnp.asarray(fg["P0"], dtype),
        jnp.asarray(fg["P_b"], dtype),
        omega=fg["omega"],
        antineutrino=fg["antineutrino"],
        background_antineutrino=fg["background_antineutrino"],
        **sampling,
    )
    data = {
        "ts": sol.ts,
        "P": sol.P,
        "mean": sol.mean,
        "stderr": sol.stderr,
        "encounters": sol.encounters,
    }
    plain = not (fg["antineutrino"] or fg["background_antineutrino"]) and len(_history(config)) == 1
    if physics["angles"] == "isotropic" and plain and physics["mu_scale"] is None:
        # The closed forms are those of a neutrino in vacuum at a constant coupling.
        exact = dict(P0=fg["P0"], P_b=fg["P_b"], gamma=physics["gamma"], mu=physics["mu"])
        exact.update(omega=fg["omega"], B=B)
        # The master equation (dt -> 0) and, for the stochastic schedule, the exact ensemble
        # mean of the schedule at this dt.
        data["master_equation"] = foreground_mean(t=sol.ts, **exact)
        if config["schedule"]["kind"] == "stochastic":
            data["exact_mean"] = foreground_mean(t=sol.ts, dt=schedule.dt, **exact)
    return data


def run_gas(config, key, progress, checkpoint, resume, devices=None):
    from ._gas import simulate_gas

    dtype = _dtype(config)
    run = config["run"]
    gas = _gas(config, dtype)
    sol = simulate_gas(
        gas,
        **_sampling(config, key, dtype),
        save_state=run["save_state"],
        chunk_saves=run["chunk_saves"],
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        devices=devices,
        shards=config["gas"]["shards"] or None,
        exchange_every=config["gas"]["exchange_every"],
    )
    data = {
        name: getattr(sol, name)
        for name in (
            "ts",
            "group_mean",
            "group_std",
            "group_length",
            "group_entropy",
            "entropy",
            "total",
            "lepton",
            "encounters",
            "final_state",
        )
    }
    if sol.state is not None:
        data["state"] = sol.state
    if sol.velocities is not None:
        data["velocities"] = sol.velocities
    data["groups"] = _groups(gas)
    return data


def run_meanfield(config, key, progress):
    from ._meanfield import GroupField, MultiAngleField, solve_meanfield

    dtype = _dtype(config)
    physics, run, mf = config["physics"], config["run"], config["meanfield"]
    gas = _gas(config, dtype)
    B = _vacuum(config, dtype)
    gamma = jnp.asarray(physics["gamma"] or 0.0, dtype)
    history = _history(config)
    mu = history.pop("mu")
    mu = mu if isinstance(mu, AbstractProfile) else jnp.asarray(mu, dtype)
    ts = jnp.linspace(0.0, run["t_max"], run["n_saves"], dtype=dtype)
    ids = jnp.asarray(gas.group_ids())
    step = config["schedule"]["dt"]  # used by the stochastic collision term only
    dt = None if step is None else jnp.asarray(step, dtype)
    anti = jnp.asarray(gas.antineutrino)
    if physics["angles"] in ("isotropic", "beams"):
        angles = _angles(config)
        field = GroupField(
            jnp.asarray(gas.fractions, dtype),
            gas.omegas,
            mu,
            gamma,
            B,
            mf["collision"],
            gas.n,
            angles=angles if not isinstance(angles, str) else Isotropic(),
            dt=dt,
            antineutrino=anti,
            **history,
        )
        sol = solve_meanfield(
            field, gas.P0, ts, rtol=mf["rtol"], atol=mf["atol"], progress=bool(progress)
        )
        states = sol.P[:, ids]  # every member follows its group
    else:
        # The velocities of realization 0 of the gas run with the same seed.
        velocities = realization_velocities(FixedVelocities(), key, 1, gas.n, dtype)[0]
        field = MultiAngleField(
            gas.omegas[ids],
            velocities,
            mu,
            gamma,
            B,
            mf["collision"],
            dt=dt,
            antineutrino=anti[ids],
            **history,
        )
        sol = solve_meanfield(
            field,
            gas.initial_state(dtype),
            ts,
            rtol=mf["rtol"],
            atol=mf["atol"],
            progress=bool(progress),
        )
        states = sol.P
    # The observables of the gas's isospins (`total`, `lepton`: nu - nubar), group means physical.
    isospins = gas.physical(states)
    obs = jax.vmap(lambda P: observe(P, ids, gas.counts, B, ids_sorted=True))(isospins)
    obs = eqx.tree_at(lambda o: o.group_mean, obs, gas.physical(obs.group_mean))
    data = {"ts": sol.ts, "groups": _groups(gas)}
    for name in ("group_mean", "group_std", "group_length", "group_entropy", "total", "lepton"):
        data[name] = getattr(obs, name)
    data["entropy"] = obs.group_entropy @ jnp.asarray(gas.fractions, dtype)
    if physics["angles"] == "fixed-velocities":
        data["velocities"] = velocities
    data["solver_steps"] = np.asarray(sol.stats["num_steps"])
    return data


def run_manybody(config, key, progress):
    from ._manybody import simulate_manybody

    dtype = _dtype(config)
    gas = _gas(config, dtype)
    sol = simulate_manybody(gas, **_sampling(config, key, dtype))
    data = {
        name: getattr(sol, name)
        for name in ("ts", "exact", "oile", "exact_entropy", "oile_entropy", "norm")
    }
    ids, G = gas.group_ids(), gas.n_groups
    for name in ("exact", "oile"):
        P = np.asarray(data[name])
        data[f"{name}_group_mean"] = np.stack([P[..., ids == g, :].mean(-2) for g in range(G)], -2)
    data["groups"] = _groups(gas)
    return data


# The run-file keys behind each argument of `simulate_gas` a checkpoint records.
_RUN_KEYS = {
    "format": ("the checkpoint format (written by another version of oile_jax)",),
    "counts": ("gas.counts",),
    "omegas": ("gas.omegas",),
    "P0": ("gas.P0",),
    "antineutrino": ("gas.antineutrino",),
    "gamma": ("physics.gamma",),
    "mu": ("physics.mu",),
    "density": ("physics.mu", "physics.mu_scale"),
    "ordering": ("physics.ordering",),
    "matter": ("physics.matter", "physics.matter_scale"),
    "L": ("physics.basis",),
    "B": ("physics.basis", "physics.theta"),
    "angles": ("physics.angles",),
    "schedule": ("schedule.kind", "schedule.dt", "schedule.vacuum"),
    "key": ("seed",),
    "n_realizations": ("run.n_realizations",),
    "n_steps": ("run.t_max", "run.n_saves"),
    "save_every": ("run.t_max", "run.n_saves"),
    "dtype": ("precision",),
    "save_state": ("run.save_state",),
    "shards": ("gas.shards",),
    "exchange_every": ("gas.exchange_every",),
}


def run(
    config: dict,
    out: Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool | None = None,
    attrs: dict | None = None,
    devices=None,
) -> Path:
    """Run the resolved `config` and write `out` (HDF5). Refuses to start if `out` exists and
    `force` is false, so nothing already written is lost. `devices` (gas runs): shard the
    realizations, or with `gas.shards` the neutrinos, across devices (see `simulate_gas`).
    Under `jax.distributed`, every process runs and process 0 writes."""
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a directory; give the path of an HDF5 file")
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    model = config["model"]
    key = jax.random.key(config["seed"])
    checkpoint = checkpoint_path(out)
    if model == "gas":
        if checkpoint.exists() and not resume:
            read_checkpoint(checkpoint)  # an unreadable one: say so, not "pass --resume"
            raise FileExistsError(
                f"{checkpoint} holds an interrupted run; pass --resume to continue it "
                "(or delete it to start again)"
            )
        if resume and not checkpoint.exists():
            print(
                f"--resume: no checkpoint at {checkpoint}; starting the run from t = 0",
                file=sys.stderr,
            )
        try:
            data = run_gas(config, key, progress, checkpoint, resume, devices)
        except CheckpointMismatch as error:
            keys = sorted({k for name in error.differ for k in _RUN_KEYS.get(name, (name,))})
            raise ValueError(
                f"{checkpoint} holds a different run: it differs in {', '.join(keys)}; restore "
                "those settings to --resume it, or delete it to start this run afresh"
            ) from None
    elif devices is not None:
        raise ValueError(f"--devices: only gas runs use several devices; model {model!r} does not")
    elif resume:
        raise ValueError(
            f"--resume: only gas runs write checkpoints; model {model!r} runs in one call"
        )
    else:
        runner = {
            "foreground": run_foreground,
            "meanfield": run_meanfield,
            "manybody": run_manybody,
        }
        data = runner[model](config, key, progress)
    data = jax.tree_util.tree_map(np.asarray, data)
    run_attrs = {
        "kind": "run",
        "model": model,
        "config": json.dumps(config),
        "config_toml": dumps(config),
        **(attrs or {}),
    }
    if is_main_process():
        write_h5(out, data, attrs=run_attrs, force=force)
        checkpoint.unlink(missing_ok=True)
    return out
