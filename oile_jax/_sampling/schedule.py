"""Encounter schedules (physics.md section 4): when encounters happen and how long a step lasts.

The encounter rate per neutrino is `lambda = mu / gamma` for every angle model, so that the
time-averaged coupling of an encounter sequence is `mu (1 - v_i.v_j)`, the mean field of
physics.md section 1 (for isotropic angles `<x> = 1` and this is `lambda gamma <x> = mu`).
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._support.checks import check_option, check_positive, concrete, fail_if

VACUUM_OPTIONS = ("split", "inside")


class AbstractSchedule(eqx.Module):
    """When encounters happen; one step of a simulation advances time by `step_length`.

    Every driver and kernel asks the schedule itself: how long a step lasts, which of a step's
    pairs meet, and whether the vacuum is applied inside the encounters or split around them.
    """

    @abc.abstractmethod
    def step_length(self, gamma, mu) -> Array:
        """Time (units of `1/mu` when `mu = 1`) advanced by one step."""

    @abc.abstractmethod
    def meetings(self, u: Float[Array, "..."], c: Float[Array, "..."], gamma, mu):
        """`(c, met)`: the values `c` of a step's pairs (their encounter angles, or the
        encounter variables the angles are proportional to) with 0 where a pair does not meet,
        and which pairs meet (bool), from one uniform `[0, 1)` draw `u` per pair. Linear in
        `c`: the gas scales the encounter variables by `gamma` afterwards."""

    @abc.abstractmethod
    def checked(self, gamma, mu, dtype) -> "AbstractSchedule":
        """This schedule with its parameters in `dtype`, validated against `gamma` and `mu`."""

    # Whether the schedule can follow a coupling `mu(t)` (its steps not set by `mu`).
    follows_density: eqx.AbstractClassVar[bool]
    # Whether a draw against the parameters decides which pairs meet (then a pathwise
    # derivative with respect to those parameters is not the derivative of the expected result).
    meets_at_random: eqx.AbstractClassVar[bool]

    @property
    @abc.abstractmethod
    def vacuum_inside(self) -> bool:
        """Whether the vacuum evolves inside the encounters (else: split around them)."""


class Stochastic(AbstractSchedule):
    """OILE II: steps of length `dt`; in each step a neutrino has an encounter with probability
    `p = mu dt / gamma` (so `p <= 1` is required). Vacuum rotation by `omega dt` about `B` is
    applied exactly, split symmetrically around the encounters.

    `dt` is a traced leaf: changing it does not recompile.
    """

    dt: Float[Array, ""] = eqx.field(converter=jnp.asarray)

    def __check_init__(self):
        if concrete(self.dt) is not None:
            if self.dt.ndim != 0:
                raise ValueError(f"dt must be a scalar, got shape {self.dt.shape}")
            check_positive(self.dt, "dt")

    follows_density = True
    meets_at_random = True

    @property
    def vacuum_inside(self) -> bool:
        return False

    def step_length(self, gamma, mu):
        return self.dt

    def meet_probability(self, gamma, mu) -> Array:
        return mu * self.dt / gamma

    def meetings(self, u, c, gamma, mu):
        # No check here: `checked` did it where the run starts (a check inside the step would
        # be a host callback in every step, and keep the program out of the compilation cache).
        met = u < self.meet_probability(gamma, mu).astype(u.dtype)
        return jnp.where(met, c, 0.0), met

    def checked(self, gamma, mu, dtype):
        from .._support.checks import check_scalar

        return Stochastic(dt=checked_dt(check_scalar(self.dt, "dt", dtype), gamma, mu))


class Deterministic(AbstractSchedule):
    """OILE I: every neutrino is always in an encounter; one step is one round lasting
    `t_int = gamma / mu`, so `mu t = gamma * rounds`.

    `vacuum="split"` applies the vacuum rotation by `omega t_int / 2` before and after each
    encounter; `vacuum="inside"` evolves the pair under vacuum and interaction together
    (`encounter_vacuum`).
    """

    vacuum: str = eqx.field(static=True, default="split")
    follows_density = False
    meets_at_random = False

    def __check_init__(self):
        check_option(self.vacuum, "vacuum", VACUUM_OPTIONS)

    def step_length(self, gamma, mu):
        return gamma / mu

    def meetings(self, u, c, gamma, mu):
        return c, jnp.ones(c.shape, dtype=bool)

    def checked(self, gamma, mu, dtype):
        return self

    @property
    def vacuum_inside(self) -> bool:
        return self.vacuum == "inside"


def checked_dt(dt, gamma, mu) -> Array:
    """`dt`, refused when too large for `gamma` (`p = mu dt / gamma > 1`): now if the values are
    concrete, else by a runtime check attached to `dt` (once, where the run starts)."""
    message = "dt is too large for gamma: the meeting probability p = mu*dt/gamma must be <= 1"
    # A little slack so that dt = gamma/mu (p = 1) survives rounding.
    slack = 1 + 1e-6
    values = [concrete(v) for v in (dt, gamma, mu)]
    if any(v is None for v in values):
        return fail_if(dt, mu * dt / gamma > slack, f"{message} (need dt <= gamma / mu)")
    d, g, m = (float(v) for v in values)
    if m * d / g > slack:
        raise ValueError(
            f"{message} (dt={d:g} with gamma={g:g}, mu={m:g} gives p = {m * d / g:g}; need "
            f"dt <= gamma / mu = {g / m:g})"
        )
    return dt
