"""The foreground model (poster, situation 1): one neutrino, or a batch of independent ones,
meeting a fresh background neutrino in the fixed state `P_b` at each encounter.

The background is a reservoir: it is not updated by the encounters and has no vacuum
oscillation of its own (it is the `P_b` of physics.md sections 5 and 8).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._physics.flavours import dimension, flavours_of
from .._physics.states import check_state
from .._physics.system import System
from .._sampling.angles import fresh_angle_model
from .._sampling.options import Sampling, SaveAt
from .._sampling.random import realization_keys
from .._sampling.schedule import AbstractSchedule
from .._sampling.spec import RunSpec, make_spec
from .._support.checks import (
    check_dtype,
    check_finite,
    check_instance,
    check_scalar,
    check_vector,
)
from .._support.programs import stored_program
from .._support.resources import check_run_fits


class ForegroundSolution(eqx.Module):
    """Result of `simulate_foreground`.

    - `ts`: save times, shape `(n_saves,)`, units of `1/mu` when `mu = 1`.
    - `P`: Bloch vectors, shape `(n_realizations, n_saves, *batch, D)` (`D = 3` for two
      flavours, 8 for three).
    - `mean`, `stderr`: ensemble mean and its standard error (sample standard deviation over
      realizations / sqrt(n_realizations); zero for one realization), shape `(n_saves, *batch, D)`.
    - `encounters`: encounters each foreground neutrino had, shape `(n_realizations, *batch)`.
    """

    ts: Float[Array, " n_saves"]
    P: Float[Array, "n_realizations n_saves *batch D"]
    mean: Float[Array, "n_saves *batch D"]
    stderr: Float[Array, "n_saves *batch D"]
    encounters: Int[Array, " n_realizations *batch"]


class Foreground(eqx.Module):
    """The foreground step's physics: the physical system (one class, the foreground: its
    frequency and species, the vacuum, matter, the coupling, the angle model), the background
    state `P_b` and the schedule. The states and `P_b` are flavour isospins (physics.md section
    10). Three flavours: `mixed` (static) says whether the foreground meets the other species
    (`+1`: a neutrino meeting antineutrinos, `-1` the reverse, 0 its own), whose encounter is
    not the SWAP (physics.md section 11)."""

    P_b: Float[Array, " D"]
    system: System
    schedule: AbstractSchedule
    mixed: int = eqx.field(static=True, default=0)

    def _turn(self, P, t, tau):
        """Half a step of the one-body field (at the step's midpoint `t`)."""
        R = self.system.turns(t, tau / 2, P.dtype)[0]
        # Elementwise, component by component: a (batch, D) x (D, D) product is slower on the
        # CPU for small D.
        D = P.shape[-1]
        return jnp.stack([sum(R[i, k] * P[..., k] for k in range(D)) for i in range(D)], -1)

    def _meet(self, s, c):
        """The foreground isospins `s` after meeting the background (`c = 0`: no meeting)."""
        meet = self.system.encounter
        if self.mixed == 0:
            return meet.bloch(s, self.P_b, c)[0]
        if self.mixed == 1:  # P = s meets Pbar_b = -s_b
            return meet.bloch_antineutrino(s, -self.P_b, c)[0]
        return -meet.bloch_antineutrino(self.P_b, -s, c)[1]  # Pbar = -s meets P_b = s_b

    def step(self, P, key, s):
        """Step `s` of the schedule for foreground neutrinos `P` (shape `(*batch, 3)`)."""
        batch = P.shape[:-1]
        # One draw per step for both the meeting decision and the angle: key derivation is a
        # large part of the cost of a step.
        u_meet, u_x = jax.random.uniform(key, (2,) + batch, dtype=P.dtype)
        system = self.system
        c = system.gamma * system.angles.from_uniform(u_x)
        tau = system.step_length(self.schedule)
        t = (s + 0.5) * tau
        c, met = self.schedule.meetings(u_meet, c, system.gamma, system.coupling(t))
        if self.schedule.vacuum_inside:
            phase = system.frequencies()[0] * tau
            P, _ = system.encounter.with_vacuum(
                P, self.P_b, c, phase_i=phase, phase_j=jnp.zeros_like(tau), B=system.B
            )
        else:
            P = self._turn(P, t, tau)
            P = self._meet(P, c)
            P = self._turn(P, t, tau)
        return P, met


@stored_program
def _run(model: Foreground, P0, spec: RunSpec):
    n_saves, save_every = spec.n_saves, spec.save_every

    def realization(rkey):
        def interval(P, k):
            def step(P, s):
                return model.step(P, jax.random.fold_in(rkey, s), s.astype(P.dtype))

            P, met = jax.lax.scan(step, P, k * save_every + jnp.arange(save_every))
            return P, (P, jnp.sum(met, axis=0))

        _, (Ps, met) = jax.lax.scan(interval, P0, jnp.arange(n_saves - 1))
        return jnp.concatenate([P0[None], Ps]), jnp.sum(met, axis=0)

    keys = realization_keys(spec.key, spec.n_realizations)
    P, encounters = jax.vmap(realization)(keys)
    ts = spec.step_length() * save_every * jnp.arange(n_saves, dtype=P.dtype)
    mean = jnp.mean(P, axis=0)
    if spec.n_realizations > 1:
        stderr = jnp.std(P, axis=0, ddof=1) / spec.n_realizations**0.5
    else:
        stderr = jnp.zeros_like(mean)
    return ForegroundSolution(ts=ts, P=P, mean=mean, stderr=stderr, encounters=encounters)


def simulate_foreground(
    P0: Float[ArrayLike, "*batch D"],
    P_b: Float[ArrayLike, " D"],
    system: System,
    schedule: AbstractSchedule,
    sampling: Sampling,
    *,
    omega: Float[ArrayLike, ""] = 0.0,
    antineutrino: bool = False,
    background_antineutrino: bool = False,
    saveat: SaveAt = SaveAt(),
) -> ForegroundSolution:
    """Foreground neutrino(s) meeting fresh background neutrinos in the fixed state `P_b`.

    **Arguments:**
    - `P0`: initial Bloch vector(s) of the foreground neutrino(s), shape `(*batch, 3)`; each
      batch member is an independent foreground neutrino. Three flavours: `(*batch, 8)`
      (`P^a = Tr(rho lambda^a)`, physics.md section 11; e.g. `flavour_state("e")`).
    - `P_b`: Bloch vector of every background neutrino, shape `(3,)` (or `(8,)`).
    - `system`: the physics (`System`), bound here to the foreground neutrino; its angle model
      is `"isotropic"` or `"fixed-angle"` (`x = 1`) (or `Isotropic()` / `FixedAngle(theta)`).
    - `schedule`: `Stochastic(dt)` (meeting probability `mu dt / gamma` per step) or
      `Deterministic(vacuum="split" | "inside")` (an encounter every `gamma / mu`).
    - `sampling`, `saveat`: as in `simulate_gas` (`Sampling`, `SaveAt`; `SaveAt.state` and
      `chunk` do not apply: every saved vector is returned). The default dtype is that of
      `P0` where it is a float array.
    - `omega`: the vacuum frequency of the foreground.
    - `antineutrino`, `background_antineutrino`: whether the foreground, and the background,
      are antineutrinos (their `P0`, `P_b` and the result are then the physical `Pbar`;
      physics.md section 10).

    The system's numbers, `omega`, `P_b`, `P0` and `dt` are traced: changing them does not
    recompile. Differentiable in them (pathwise, at a fixed encounter sequence).
    """
    if check_instance(saveat, SaveAt, "saveat").state or saveat.chunk is not None:
        raise ValueError(
            "simulate_foreground returns every saved vector in one program: SaveAt.state and "
            "SaveAt.chunk do not apply"
        )
    dtype = check_instance(sampling, Sampling, "sampling").dtype
    if dtype is None:
        P0_array = jnp.asarray(P0)
        dtype = (
            P0_array.dtype
            if jnp.issubdtype(P0_array.dtype, jnp.floating)
            else jnp.result_type(float)
        )
        sampling = dataclasses.replace(sampling, dtype=check_dtype(dtype))
    dtype = check_dtype(dtype)
    system = check_instance(system, System, "system")
    system = dataclasses.replace(system, angles=fresh_angle_model(system.angles))
    n = flavours_of(P0, "P0")
    D = dimension(n)
    P0 = check_state(check_vector(P0, "P0", dtype, size=D), "P0")
    P_b = check_vector(P_b, "P_b", dtype, size=D, what=f"a Bloch vector like P0's ({D},)")
    if P_b.ndim != 1:
        raise ValueError(f"P_b must have shape ({D},), got {P_b.shape}")
    P_b = check_state(P_b, "P_b")
    omega = check_finite(check_scalar(omega, "omega", dtype), "omega")
    for flag, name in (
        (antineutrino, "antineutrino"),
        (background_antineutrino, "background_antineutrino"),
    ):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    if isinstance(system, System) and system.opacities is not None:
        raise ValueError(
            "System.opacities are not available for the foreground model (its background is "
            "fixed, and the foreground alone would relax): give opacities=None, or simulate a "
            "gas (simulate_gas) with Reemission"
        )
    spec = make_spec(
        system,
        schedule,
        sampling,
        saveat,
        omegas=omega[None],
        antineutrino=bool(antineutrino),
        n_flavours=n,
    )
    # The saved vectors of every realization, on the device and on the host (the mean and the
    # spread beside them), and a realization's carried state.
    R, itemsize = spec.n_realizations, np.dtype(spec.dtype).itemsize
    saved = R * spec.n_saves * int(np.prod(P0.shape)) * itemsize
    check_run_fits(
        2 * saved,
        saved,
        f"this foreground run ({R} realizations x {spec.n_saves} saves x "
        f"{int(np.prod(P0.shape[:-1]))} foreground neutrinos, {np.dtype(spec.dtype).name})",
        "lower Sampling.n_realizations (run.n_realizations), the number of saves "
        "(SaveAt.every, run.n_saves) or the batch of P0",
    )
    sign = -1.0 if antineutrino else 1.0  # isospin s = sign P (physics.md section 10)
    model = Foreground(
        P_b=P_b if not background_antineutrino else -P_b,
        system=spec.system,
        schedule=spec.schedule,
        mixed=0 if n == 2 or antineutrino == background_antineutrino else int(sign),
    )
    solution = _run(model, P0 if sign == 1.0 else sign * P0, spec)
    if sign == 1.0:
        return solution
    return eqx.tree_at(lambda s: (s.P, s.mean), solution, (sign * solution.P, sign * solution.mean))
