"""`simulate_gas`: the host loop over chunks of an engine's jitted scan, with observables
streamed to the host, a progress bar, checkpoints and exact resume.

Randomness (`_random.realization_keys`, `realization_streams`): realization `r` uses
`key_r = fold_in(key, r)`, split once into a key for its velocities (fixed-velocities model) and a
key for its steps; step `s` uses `fold_in(steps_key, s)`. A step's numbers depend only on
`(key, r, s)`, so chunking and resuming never change a result.
"""

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from .._physics.flavours import flavour_count
from .._physics.opacities import check_scattering
from .._physics.states import occupations
from .._physics.system import System
from .._sampling.angles import AbstractFreshAngleModel
from .._sampling.options import Checkpoint, Sampling, SaveAt, Sharding
from .._sampling.schedule import AbstractSchedule
from .._sampling.spec import RunSpec, make_spec, step_midpoints
from .._support.checks import check_instance, concrete
from .._support.progress import ProgressBar
from .._support.resources import check_disk, check_memory, gas_bytes
from .._support.sharding import to_host
from .checkpoint import fingerprint, read_checkpoint, write_checkpoint
from .dense import DenseEngine
from .engine import AbstractGasEngine
from .kernel import GasKernel
from .model import Gas
from .observe import FIELDS, Observables, series
from .sharded import ShardedEngine, check_shards


@dataclasses.dataclass(frozen=True)
class GasSolution:
    """Result of `simulate_gas`, as NumPy arrays on the host.

    Shapes: `R` realizations, `S` saves (the initial state included), `G` groups, `N` neutrinos.
    - `ts` `(S,)`: save times (units of `1/mu` when `mu = 1`).
    - `group_mean`, `group_std` `(R, S, G, D)` (`D = 3` for two flavours, 8 for three);
      `group_length`, `group_entropy` `(R, S, G)`:
      see `Observables` (`Pbar` for an antineutrino group; `state` and `final_state` too).
    - `total` `(R, S, D)`: `sum_nu P_i - sum_nubar Pbar_i` (the isospins' sum, which every
      encounter conserves); `lepton` `(R, S)`: `B . total`, the lepton number `nu - nubar`.
    - `encounters` `(R, S)`: cumulative number of encounters (pairs) since `t = 0`.
    - `state` `(R, S, N, D)` with `SaveAt(state=True)`, else None; `final_state` `(R, N, D)`.
    - `velocities` `(R, N, 3)` for the fixed-velocities model, else None.
    - `counts`: neutrinos per group; `antineutrino`: whether each group is antineutrinos.
    """

    ts: np.ndarray
    observables: Observables
    encounters: np.ndarray
    final_state: np.ndarray
    state: np.ndarray | None
    velocities: np.ndarray | None
    counts: tuple[int, ...]
    antineutrino: tuple[bool, ...] = ()

    def __getattr__(self, name: str):  # the series of every field of `Observables`
        return series(self, name)

    @property
    def n_flavours(self) -> int:
        """2 or 3."""
        return flavour_count(self.group_mean.shape[-1], "group_mean")

    @property
    def occupations(self) -> np.ndarray:
        """`(R, S, G, n)`: the diagonal of each group's mean density matrix (the probability of
        each flavour when the states are written in the flavour basis)."""
        return np.asarray(occupations(self.group_mean))

    @property
    def flavour_numbers(self) -> np.ndarray:
        """`(R, S, n)`: `sum_nu rho_aa - sum_nubar rhobar_aa` for each basis state `a` (the
        flavour lepton numbers in the flavour basis; conserved by the encounters, and by the
        vacuum only without mixing)."""
        anti = self.antineutrino or (False,) * len(self.counts)
        net = sum(c * (-1 if a else 1) for c, a in zip(self.counts, anti, strict=True))
        n = self.n_flavours
        return np.asarray(occupations(self.total)) - (1 - net) / n

    @property
    def fractions(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=float) / sum(self.counts)

    @property
    def entropy(self) -> np.ndarray:
        """Mean one-neutrino entanglement entropy over the whole gas, `(R, S)`."""
        return self.group_entropy @ self.fractions

    @property
    def encounters_per_neutrino(self) -> np.ndarray:
        return 2 * self.encounters / sum(self.counts)


def check_fits(engine: AbstractGasEngine, n_saves: int, chunk_saves: int, save_state, checkpoint):
    """Refuse, before compiling, a run whose arrays or checkpoint cannot fit."""
    *lead, n, _ = engine.shape
    copies, itemsize = int(np.prod(lead)), np.dtype(engine.dtype).itemsize
    device_bytes, host_bytes = gas_bytes(
        n=n,
        copies=copies,
        itemsize=itemsize,
        n_saves=n_saves,
        chunk_saves=chunk_saves,
        save_state=save_state,
        velocities=engine.kernel.angles.keeps_velocities,
        components=engine.shape[-1],
    )
    what = f"this gas run (N = {n} x {copies} realizations or points, {engine.dtype.name}"
    what += f", {n_saves} saved states)" if save_state else ")"
    advice = (
        "lower the number of realizations, N or (with save_state) the number of saves, or "
        "drop save_state"
    )
    check_memory(device_bytes, host_bytes, engine.devices, what, advice)
    if checkpoint is not None:
        # The checkpoint holds the state and the saved series; while it is replaced, the old
        # file and the new one exist together.
        D = engine.shape[-1]
        state = copies * n * (D * itemsize + 4)
        series = copies * n * D * itemsize * n_saves if save_state else 0
        check_disk(
            2 * (state + series), Path(checkpoint).parent, f"the checkpoint of {what}", advice
        )


def drive(
    engine: AbstractGasEngine,
    spec: RunSpec,
    saveat: SaveAt,
    checkpoint: Checkpoint | None,
    fingerprint: str | None,
    progress: bool | None,
    label: str,
):
    """The host loop of every gas run: start `engine`, continue a checkpoint, advance chunk by
    chunk (`saveat.chunk` save intervals; observables to the host, a checkpoint after every
    chunk, a progress bar). The save axis of the results follows the engine's leading axes
    (`engine.shape[:-2]`).

    Returns `(final_state, observables, encounters, state)`: the final Bloch vectors in gas
    order, the `Observables` of series (the initial save included), cumulative encounters, and
    the state series (`None` without `saveat.state`). The engines carry isospins; the group
    means and the states come back as the physical `P` and `Pbar` (`Gas.physical`)."""
    save_every, n_intervals = spec.save_every, spec.n_saves - 1
    axis = len(engine.shape) - 2  # after the realization axis (and a sweep's point axis)
    chunk_saves = n_intervals if saveat.chunk is None else saveat.chunk
    save_state = saveat.state
    path = Path(checkpoint.path) if checkpoint is not None else None
    check_fits(engine, n_intervals + 1, chunk_saves, save_state, path)
    n = engine.shape[-2]
    if (n // 2) * save_every >= 2**31:
        raise ValueError(
            f"save_every={save_every} steps per save is too many for N={n}: the encounters of "
            f"one save interval, up to N/2 x save_every = {(n // 2) * save_every}, are counted "
            "in int32 (< 2^31); save more often (a smaller SaveAt.every, or on the command "
            "line a larger run.n_saves)"
        )
    carry, obs0 = engine.start()
    # "saves_state": the saved states (SaveAt(state=True)), apart from the engine's own "state".
    pieces: dict[str, list] = {name: [] for name in [*FIELDS, "encounters", "saves_state"]}
    done = 0
    if path is not None and path.is_dir():
        raise ValueError(f"Checkpoint.path={str(path)!r} is a directory; give the path of a file")
    if path is not None and path.exists():
        if not checkpoint.resume:
            raise FileExistsError(
                f"Checkpoint.path={str(path)!r} exists; give Checkpoint(path, resume=True) to "
                "continue it"
            )
        saved = read_checkpoint(path, fingerprint)
        done = int(saved["step"]) // save_every
        carry = engine.restore(saved)
        for name in pieces:
            if name in saved:
                pieces[name].append(np.asarray(saved[name]))

    if jax.process_count() > 1:
        # Every process has checked the checkpoint before process 0 may write one.
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("oile_jax simulate_gas start")
    bar = ProgressBar(n_intervals, label, enabled=progress)
    bar.update(done)
    while done < n_intervals:
        size = min(chunk_saves, n_intervals - done)
        carry, obs, met, states = engine.advance(
            carry, done * save_every, size, save_every, save_state
        )
        for name in FIELDS:
            pieces[name].append(to_host(getattr(obs, name)))
        pieces["encounters"].append(to_host(met).astype(np.int64))
        if save_state:
            pieces["saves_state"].append(states)
        done += size
        if path is not None:
            state = engine.checkpoint(carry)
            write_checkpoint(path, fingerprint, done * save_every, state, pieces, axis)
        bar.update(done)
    bar.close()

    def joined(name, first):
        first = np.expand_dims(to_host(first), axis)
        return np.concatenate([first] + pieces[name], axis=axis) if pieces[name] else first

    gas = engine.gas
    out = {name: joined(name, getattr(obs0, name)) for name in FIELDS}
    out["group_mean"] = gas.physical(out["group_mean"])
    n_met = joined("encounters", np.zeros(obs0.lepton.shape, np.int64))
    state = None
    if save_state:
        saved = pieces["saves_state"][0]  # (..., saves, N, 3): the state's shape without `axis`
        shape = saved.shape[:axis] + saved.shape[axis + 1 :]
        initial = np.broadcast_to(np.asarray(gas.initial_isospins(engine.dtype)), shape)
        state = gas.physical(joined("saves_state", initial))
    final = gas.physical(engine.state(carry))
    return final, Observables(**out), np.cumsum(n_met, axis=axis), state


def prepare(gas, system, schedule, sampling, saveat) -> tuple[Gas, RunSpec]:
    """A validated gas and its run specification (`make_spec`; the gas's frequencies are
    checked where the system is bound to its groups, its states here in the run's dtype)."""
    if not isinstance(gas, Gas):
        raise ValueError(f"gas must be a Gas(counts, omegas, P0), got {type(gas).__name__}")
    spec = make_spec(
        system,
        schedule,
        sampling,
        saveat,
        omegas=gas.omegas,
        antineutrino=gas.antineutrino,
        n_flavours=gas.n_flavours,
    )
    angles = spec.system.angles
    spec = eqx.tree_at(lambda s: s.system.angles, spec, angles.for_gas(gas.counts))
    opacities = spec.system.opacities
    if opacities is not None and opacities.scatters:
        # Groups of beams or rings share a direction each; fixed velocities, one a neutrino.
        check_scattering(
            opacities, gas.omegas, spec.system.antineutrino, "system.opacities",
            directions=not isinstance(angles, AbstractFreshAngleModel),
            one_direction_per_class=angles.by_group,
        )  # fmt: skip
        tau = concrete(spec.step_length())
        opacities.check_swaps(gas.counts, tau, step_midpoints(tau, spec.n_steps))
    return gas.checked(spec.dtype), spec


def run_stamp(gas, spec, saveat, checkpoint, sharding) -> str | None:
    """The fingerprint a checkpoint of this run carries (None without a checkpoint)."""
    if checkpoint is None:
        return None
    if any(concrete(x) is None for x in (spec.system.gamma, spec.system.mu, gas.omegas, gas.P0)):
        raise ValueError("a Checkpoint needs concrete parameters (not under jit or grad)")
    return fingerprint(gas, spec, saveat, sharding)


def simulate_gas(
    gas: Gas,
    system: System,
    schedule: AbstractSchedule,
    sampling: Sampling,
    *,
    saveat: SaveAt = SaveAt(),
    checkpoint: Checkpoint | None = None,
    sharding: Sharding | None = None,
    progress: bool | None = None,
) -> GasSolution:
    """Simulate an OILE gas: `sampling.n_realizations` independent realizations, vmapped.

    **Arguments:**
    - `gas`: a `Gas`; its antineutrino groups are given and returned as their physical `Pbar`.
    - `system`: the physics (`System`: gamma, mu, the vacuum, matter, the angle model), bound
      here to the gas's groups. Every particle turns about `omega_g B + lambda(t) L` exactly
      over each half step (the field at the step's midpoint).
    - `schedule`: `Stochastic(dt)` or `Deterministic(vacuum="split" | "inside")` (not with
      matter or three flavours).
    - `sampling`: key, run length, realizations and dtype (`Sampling`).
    - `saveat`: what is saved and how often (`SaveAt`).
    - `checkpoint`: a `Checkpoint` written after every chunk, or continued.
    - `sharding`: realizations across devices, or one gas in shards (`Sharding`).
    - `progress`: draw a progress bar on stderr (default: when stderr is a terminal).

    The system's numbers, `dt`, the gas's `omegas` and `P0` are traced: changing them does not
    recompile; `counts`, the sampling's sizes, `saveat` and the sharding are static.
    """
    gas, spec = prepare(gas, system, schedule, sampling, saveat)
    kernel = GasKernel.make(gas, spec)
    sharding = check_instance(Sharding() if sharding is None else sharding, Sharding, "sharding")
    if sharding.shards is None:
        engine = DenseEngine.make(kernel, gas, spec, sharding.devices)
    else:
        check_shards(sharding, gas.n, spec.save_every)
        if spec.system.opacities is not None and spec.system.opacities.scatters:
            raise ValueError(
                "sharding: Sharding(shards=...) pairs the neutrinos within shards, and "
                "Reemission's scattering rate is set for pairs drawn from the whole gas; run a "
                "gas with scattering unsharded (its realizations may still go across devices)"
            )
        engine = ShardedEngine.make(kernel, gas, spec, sharding)
    final_state, observables, encounters, state = drive(
        engine,
        spec,
        saveat,
        checkpoint,
        run_stamp(gas, spec, saveat, checkpoint, sharding),
        progress,
        label=f"gas N={gas.n} R={spec.n_realizations}",
    )
    return GasSolution(
        ts=spec.times(),
        encounters=encounters,
        final_state=final_state,
        state=state,
        velocities=engine.velocities(),
        counts=gas.counts,
        antineutrino=gas.antineutrino,
        observables=observables,
    )
