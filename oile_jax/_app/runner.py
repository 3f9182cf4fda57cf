"""Run a resolved configuration (see `_config`) and write its HDF5 result.

Every model writes `ts` and its saved observables; the root attributes hold `kind = "run"`, the
model, the resolved configuration (JSON and TOML) and the provenance of `write_h5`. Gas runs
write a checkpoint beside the output after every chunk; an interrupted run continues from it
with `resume=True` and gives exactly the numbers of an uninterrupted run.
"""

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._gas import observe
from .._gas.checkpoint import CheckpointMismatch, read_checkpoint
from .._gas.observe import FIELDS
from .._output.io import write_h5
from .._physics.encounter import Swap
from .._physics.states import entropy, occupations, von_neumann_entropy
from .._sampling.angles import Isotropic
from .._sampling.options import Checkpoint
from .._sampling.schedule import Stochastic
from .._support.resources import check_disk
from .._support.sharding import is_main_process
from .config import dumps
from .run_options import RunObjects, group_tables
from .schema import SCHEMA


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.stem + ".checkpoint.h5")


def run_foreground(run: RunObjects, progress):
    from .._foreground.master import foreground_mean
    from .._foreground.model import simulate_foreground

    dtype, system, schedule = run.dtype, run.system, run.schedule
    fg = run.config["foreground"]
    sol = simulate_foreground(
        jnp.asarray(fg["P0"], dtype),
        jnp.asarray(fg["P_b"], dtype),
        system,
        schedule,
        run.sampling,
        omega=fg["omega"],
        antineutrino=fg["antineutrino"],
        background_antineutrino=fg["background_antineutrino"],
        saveat=run.saveat,
    )
    data = {
        "ts": sol.ts,
        "P": sol.P,
        "mean": sol.mean,
        "stderr": sol.stderr,
        "encounters": sol.encounters,
    }
    # The closed forms are those of a neutrino in a neutrino background at isotropic angles, in
    # vacuum, normal ordering (three flavours: the ordering is in `B`, which they take), at a
    # constant coupling, meeting by the SWAP.
    plain = not (fg["antineutrino"] or fg["background_antineutrino"]) and (
        isinstance(system.encounter, Swap)
        and system.ordering == "normal"
        and system.field_is_vacuum
        and system.density is None
    )
    if isinstance(system.angles, Isotropic) and plain:
        # The run file's numbers as written (the closed forms compute in float64).
        physics = run.config["physics"]
        exact = dict(P0=fg["P0"], P_b=fg["P_b"], gamma=physics["gamma"], mu=physics["mu"])
        exact.update(omega=fg["omega"], B=system.B)
        # The master equation (dt -> 0) and, for the stochastic schedule, the exact ensemble
        # mean of the schedule at this dt.
        data["master_equation"] = foreground_mean(t=sol.ts, **exact)
        if isinstance(schedule, Stochastic):
            data["exact_mean"] = foreground_mean(t=sol.ts, dt=schedule.dt, **exact)
    return data


def run_gas(run: RunObjects, progress, checkpoint: Checkpoint, devices=None):
    from .._gas import simulate_gas

    gas = run.gas
    sol = simulate_gas(
        gas,
        run.system,
        run.schedule,
        run.sampling,
        saveat=run.saveat,
        checkpoint=checkpoint,
        sharding=dataclasses.replace(run.sharding, devices=devices),
        progress=progress,
    )
    data = {"ts": sol.ts, **{name: getattr(sol, name) for name in FIELDS}}
    for name in ("entropy", "occupations", "flavour_numbers", "encounters", "final_state"):
        data[name] = getattr(sol, name)
    if sol.state is not None:
        data["state"] = sol.state
    if sol.velocities is not None:
        data["velocities"] = sol.velocities
    data["groups"] = group_tables(gas)
    return data


def run_meanfield(run: RunObjects, progress):
    from .._meanfield.fields import MultiAngleField, solve_meanfield

    dtype, gas, field, mf = run.dtype, run.gas, run.field, run.config["meanfield"]
    ids = jnp.asarray(gas.group_ids())
    anti = jnp.asarray(gas.antineutrino)
    multi_angle = isinstance(field, MultiAngleField)
    P0 = gas.initial_state(dtype) if multi_angle else gas.P0
    # The kinetic opacities' states carry each class's number first: `f = N rho`, `(N, N P)`.
    kinetic = field.components > P0.shape[-1]
    if kinetic:
        numbers = run.config["gas"]["numbers"] or [1.0] * gas.n_groups
        N0 = jnp.asarray(numbers, dtype)[ids] if multi_angle else jnp.asarray(numbers, dtype)
        P0 = jnp.concatenate([N0[:, None], N0[:, None] * P0], axis=-1)
    sol = solve_meanfield(
        field, P0, run.ts, rtol=mf["rtol"], atol=mf["atol"], progress=bool(progress)
    )
    states = sol.P if multi_angle else sol.P[:, ids]  # every member follows its group
    numbers = states[..., 0] if kinetic else jnp.ones(states.shape[:-1], dtype)
    states = states[..., 1:] if kinetic else states
    # The observables of the gas's isospins (`total`, `lepton`: nu - nubar), group means physical.
    isospins = gas.physical(states)
    # Three flavours: the entropy of an antineutrino is that of its `Pbar = -s`, not of `s`.
    signs = None
    if gas.n_flavours > 2 and any(gas.antineutrino):
        signs = jnp.where(anti, -1.0, 1.0).astype(dtype)
    B = run.system.B
    observed = lambda P: observe(P, ids, gas.counts, B, ids_sorted=True, signs=signs)
    obs = jax.vmap(observed)(isospins)
    obs = eqx.tree_at(lambda o: o.group_mean, obs, gas.physical(obs.group_mean))
    data = {"ts": sol.ts, "groups": group_tables(gas)}
    for name in FIELDS:
        data[name] = getattr(obs, name)
    # Each group's mean number `(S, G)` (1 but with the kinetic opacities).
    per_group = jax.vmap(lambda x: jax.ops.segment_sum(x, ids, num_segments=gas.n_groups))
    number = per_group(numbers) / jnp.asarray(gas.counts, dtype)
    data["occupations"] = occupations(obs.group_mean) + (number[..., None] - 1) / gas.n_flavours
    weights = jnp.asarray(gas.fractions, dtype)
    if kinetic:
        # The entropy of each class's state `rho = f / N`, averaged over its neutrinos.
        rho = isospins / numbers[..., None]
        rho = rho if signs is None else rho * signs[ids][:, None]
        S = entropy(rho) if rho.shape[-1] == 3 else von_neumann_entropy(rho)
        data["group_entropy"] = per_group(numbers * S) / per_group(numbers)
        data["numbers"] = number
        weights = weights * number
        weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
    data["entropy"] = jnp.sum(data["group_entropy"] * weights, axis=-1)
    if multi_angle:
        data["velocities"] = field.velocities
    data["solver_steps"] = np.asarray(sol.stats["num_steps"])
    return data


def run_manybody(run: RunObjects, progress):
    from .._manybody.statevector import simulate_manybody

    gas = run.gas
    sol = simulate_manybody(gas, run.system, run.schedule, run.sampling, saveat=run.saveat)
    data = {
        name: getattr(sol, name)
        for name in ("ts", "exact", "oile", "exact_entropy", "oile_entropy", "norm")
    }
    ids, G = gas.group_ids(), gas.n_groups
    for name in ("exact", "oile"):
        P = np.asarray(data[name])
        data[f"{name}_group_mean"] = np.stack([P[..., ids == g, :].mean(-2) for g in range(G)], -2)
    data["groups"] = group_tables(gas)
    return data


def run_file_keys(differ: list[str]) -> list[str]:
    """The run-file keys behind the values of a run (the checkpoint fingerprint's names) in
    which two runs differ: the keys whose schema entry `shapes` the name, its module field
    (`angles.directions`) or its module (`matter` for `matter.scale`). The number of steps
    follows from `run.t_max` and the step's length: it is blamed on the run's length only when
    nothing that sets the step's length differs."""
    steps = {"n_steps", "save_every"}
    if any(name.startswith(("schedule.", "density")) or name in ("gamma", "mu") for name in differ):
        differ = [name for name in differ if name not in steps]
    keys = set()
    for name in differ:
        if name == "format":
            keys.add("the checkpoint format (written by another version of oile_jax)")
            continue
        blamed = [k for k, entry in SCHEMA.items() if name in entry.shapes]
        if not blamed:  # a module's field: the keys of the field, else of the module
            module = name.split(".")[0]
            blamed = [k for k, entry in SCHEMA.items() if module in entry.shapes]
        keys.update(blamed or (name,))
    return sorted(keys)


def run(
    objects: RunObjects,
    out: Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool | None = None,
    attrs: dict | None = None,
    devices=None,
) -> Path:
    """Run a run file built into its objects (`run_options.build`) and write `out` (HDF5).
    Refuses to start if `out` exists and `force` is false, so nothing already written is lost.
    `devices` (gas runs): shard the realizations, or with `gas.shards` the neutrinos, across
    devices (see `simulate_gas`). Under `jax.distributed`, every process runs and process 0
    writes."""
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a directory; give the path of an HDF5 file")
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    if not is_main_process():  # process 0 alone writes (under jax.distributed)
        return _run(objects, out, resume, force, progress, attrs, devices)
    check_writable(out)
    check_disk(
        output_bytes(objects.config),
        out.parent,
        f"the output {out}",
        "free some space, choose another --out, or lower the run's size (run.n_realizations, "
        "run.n_saves, gas.counts with run.save_state)",
    )
    with output_lock(out):
        return _run(objects, out, resume, force, progress, attrs, devices)


def check_writable(out: Path) -> None:
    """Refuse, before the run, an output whose directory cannot be written (a file is made
    there and removed at once; the directory is made if missing, as the output would be)."""
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise OSError(f"--out {out}: {folder} is a file, not a directory; choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OSError(
            f"--out {out}: its directory cannot be written ({error.strerror or error}); choose "
            "another --out"
        ) from None


def output_bytes(config: dict) -> int:
    """About the size of a run's HDF5 output: its saved series (the largest datasets)."""
    itemsize = 4 if config["precision"] == "float32" else 8
    model, run_ = config["model"], config["run"]
    S, R = run_["n_saves"], run_.get("n_realizations", 1) or 1
    D = 8 if config["physics"].get("n_flavours", 2) == 3 else 3
    if model == "foreground":
        batch = int(np.prod(np.shape(config["foreground"]["P0"])[:-1], dtype=np.int64))
        return R * S * max(batch, 1) * D * itemsize
    counts = config.get("gas", {}).get("counts") or [1]
    N, G = int(np.sum(counts)), len(counts)
    if model == "manybody":
        return R * S * N * 8 * itemsize
    series = S * G * (2 * D + 3) * itemsize + 2 * S * D * itemsize + 8 * S
    if model == "meanfield":
        return series
    state = S * N * D * itemsize if run_.get("save_state") else 0
    return R * (series + N * D * itemsize + state)


@contextlib.contextmanager
def output_lock(out: Path):
    """Hold `.OUT.lock` beside the output for the run: a second run on the same `--out` is
    refused at its start, not after computing. The lock is the operating system's (`flock`):
    a run that dies releases it; the file is removed when the run ends."""
    import fcntl

    lock = out.with_name(f".{out.name}.lock")
    handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OSError(
                f"--out {out}: another run is writing it (it holds {lock}); wait for it to "
                "finish, or choose another --out"
            ) from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        os.close(handle)


def _run(objects: RunObjects, out, resume, force, progress, attrs, devices) -> Path:
    config, model = objects.config, objects.model
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
            data = run_gas(objects, progress, Checkpoint(checkpoint, resume), devices)
        except CheckpointMismatch as error:
            keys = run_file_keys(error.differ)
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
        data = runner[model](objects, progress)
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
