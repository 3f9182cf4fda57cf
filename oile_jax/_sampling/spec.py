"""The run specification: a driver's system (bound to the model's classes), schedule, sampling
and save interval, validated in one place (`make_spec`) and carried as one `RunSpec`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._physics.flavours import check_flavours
from .._physics.profiles import AbstractProfile, check_overflow, check_range
from .._physics.system import System
from .._support.checks import (
    check_dtype,
    check_instance,
    concrete,
    fail_if,
)
from .options import Sampling, SaveAt
from .schedule import AbstractSchedule


def check_key(key):
    """A typed PRNG key; legacy `PRNGKey(seed)` data is wrapped (same threefry bits)."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got shape {key.shape}")
        return key
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise ValueError(
            f"key must be a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
            f"got dtype {key.dtype} and shape {key.shape}"
        )
    return jax.random.wrap_key_data(key)


def run_length(schedule, gamma, mu, sampling: Sampling, save_every: int) -> int:
    """Steps of a run: `sampling.n_steps`, or `sampling.t_max` rounded to a whole number of
    save intervals (at least one)."""
    if sampling.n_steps is not None:
        n_steps = sampling.n_steps
    else:
        tau = concrete(schedule.step_length(gamma, mu))
        t_max_value = concrete(sampling.t_max)
        if tau is None or t_max_value is None:
            raise ValueError(
                "t_max needs concrete gamma, mu, dt and t_max; under jit or grad pass n_steps"
            )
        if not np.isfinite(t_max_value) or t_max_value <= 0:
            raise ValueError(f"t_max must be > 0, got {sampling.t_max!r}")
        n_steps = save_every * max(1, round(float(t_max_value) / (float(tau) * save_every)))
    if n_steps % save_every:
        raise ValueError(
            f"n_steps={n_steps} must be a multiple of the save interval SaveAt.every={save_every}"
        )
    return n_steps


class RunSpec(eqx.Module):
    """A validated run: the physical system (`System`, its numbers traced), the schedule, the
    key, and the static sizes and dtype. Built by `make_spec`; taken by every driver."""

    system: System
    schedule: AbstractSchedule
    key: PRNGKeyArray
    n_steps: int = eqx.field(static=True)
    save_every: int = eqx.field(static=True)
    n_realizations: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)

    @property
    def n_saves(self) -> int:
        """Saved times, the initial one included."""
        return self.n_steps // self.save_every + 1

    def step_length(self) -> Array:
        return self.system.step_length(self.schedule)

    def times(self) -> np.ndarray:
        """The save times on the host (NaN when the parameters are traced)."""
        tau = concrete(self.step_length())
        tau = float(np.asarray(tau)) if tau is not None else np.nan
        return (tau * self.save_every * np.arange(self.n_saves)).astype(self.dtype)


def step_midpoints(tau, n_steps: int) -> np.ndarray | None:
    """The midpoints of the run's steps on the host, `(k + 1/2) tau` (None for a traced
    `tau`): where the checks of a profile that multiplies rates look."""
    return None if tau is None else (np.arange(n_steps) + 0.5) * float(tau)


def make_spec(
    system: System,
    schedule: AbstractSchedule,
    sampling: Sampling,
    saveat: SaveAt,
    *,
    omegas,
    antineutrino=False,
    n_flavours: int = 2,
) -> RunSpec:
    """The run of `system` (bound here to the model's classes: `omegas`, `antineutrino`,
    `n_flavours`), `schedule`, `sampling` and `saveat`, validated in one place (the physics by
    `System.bind`); errors name the argument and what is allowed."""
    check_instance(system, System, "system")
    check_instance(sampling, Sampling, "sampling")
    check_instance(saveat, SaveAt, "saveat")
    dtype = check_dtype(sampling.dtype)
    if not isinstance(schedule, AbstractSchedule):
        raise ValueError(
            f"schedule must be Stochastic(dt=...) or Deterministic(), got {schedule!r}"
        )
    if check_flavours(n_flavours) > 2 and schedule.vacuum_inside:
        raise ValueError(
            "Deterministic(vacuum='inside') is two-flavour only; use vacuum='split' for three "
            "flavours"
        )
    mu = system.mu
    varying = isinstance(mu, AbstractProfile) and not mu.constant
    if varying and not schedule.follows_density:
        raise ValueError(
            f"mu as a function of time needs a schedule whose steps do not depend on mu "
            f"(Stochastic(dt)); {type(schedule).__name__}() rounds last gamma / mu, so "
            "give mu as a number"
        )
    if not system.field_is_vacuum and schedule.vacuum_inside:
        raise ValueError(
            "matter with Deterministic(vacuum='inside') is not available (the pair's "
            "vacuum-inside unitary turns both about B alone); use vacuum='split'"
        )
    opacities = system.opacities
    if opacities is not None and not opacities.keeps_number:
        raise ValueError(
            "System.opacities: Opacities (the kinetic equation of occupations, whose numbers "
            "change) are for the mean fields (GroupField, MultiAngleField); the OILE gas's "
            "particles each keep their number: give Reemission(rate, equilibrium) (each "
            "neutrino absorbed and re-emitted at once, physics.md section 14)"
        )
    if opacities is not None and schedule.vacuum_inside:
        raise ValueError(
            "System.opacities with Deterministic(vacuum='inside') is not available (the pair's "
            "vacuum-inside unitary turns both about B alone); use vacuum='split'"
        )
    system = system.bind(omegas, antineutrino, n_flavours=n_flavours, dtype=dtype)
    gamma, mu = system.gamma, system.mu
    schedule = schedule.checked(gamma, mu, dtype)
    if saveat.every is None:  # the initial and the final state
        if sampling.n_steps is None:
            raise ValueError("SaveAt(every=None) (the final state only) needs n_steps")
        save_every = sampling.n_steps
    else:
        save_every = saveat.every
    n_steps = run_length(schedule, gamma, mu, sampling, save_every)
    tau = concrete(schedule.step_length(gamma, mu))
    for name, prof in system.profiles().items():
        if tau is not None:
            check_overflow(prof, float(tau) * n_steps, name, dtype)
    if system.opacities is not None and tau is not None:
        system.opacities.check_scale(step_midpoints(tau, n_steps))
    if system.density is not None:
        schedule = check_density(schedule, gamma, system.density, n_steps)
    return RunSpec(
        system=system,
        schedule=schedule,
        key=check_key(sampling.key),
        n_steps=n_steps,
        save_every=save_every,
        n_realizations=sampling.n_realizations,
        dtype=jnp.dtype(dtype),
    )


def check_density(schedule, gamma, density: AbstractProfile, n_steps: int):
    """The schedule, refused if `mu(t)` is negative at a step's midpoint or makes the meeting
    probability `mu(t) dt / gamma` exceed 1 there: now where the values are concrete, else by a
    runtime check attached to `dt` (evaluated once, where the run starts, not in every step)."""
    tau, g = concrete(schedule.step_length(gamma, 1.0)), concrete(gamma)
    if tau is not None and g is not None and concrete(density(0.0)) is not None:
        times = (np.arange(n_steps) + 0.5) * float(tau)
        check_range(density, times, "mu(t)", lower=0.0)
        check_range(
            density,
            times,
            "mu(t)",
            upper=float(g) / float(tau),
            what=f" (the meeting probability mu(t) dt / gamma <= 1 needs mu(t) <= gamma / dt = "
            f"{float(g) / float(tau):g})",
        )
        return schedule
    # Traced: the extremes over the steps, a block of steps at a time (bounded memory).
    block = min(n_steps, 65536)
    tau = schedule.step_length(gamma, 1.0)
    starts = jnp.arange(0, n_steps, block)

    def extremes(start):
        k = start + jnp.arange(block)
        values = density((k.astype(tau.dtype) + 0.5) * tau)
        valid = k < n_steps
        return jnp.min(jnp.where(valid, values, jnp.inf)), jnp.max(jnp.where(valid, values, 0))

    lowest, highest = jax.lax.map(extremes, starts)
    bad = (jnp.min(lowest) < 0) | (jnp.max(highest) * tau / gamma > 1 + 1e-6)
    dt = fail_if(
        schedule.dt,
        bad,
        "mu(t) must be >= 0 at every step, and the meeting probability mu(t) dt / gamma <= 1 "
        "(mu(t) <= gamma / dt)",
    )
    return eqx.tree_at(lambda s: s.dt, schedule, dt)
