"""The physical system (physics.md sections 1, 4, 10 and 11): what defines the physics every
model of the package computes, and the one place where its one-body field, its isospin signs
and the turns about that field are computed.

A system is made of particle classes (the groups of a gas, the angles of a multi-angle mean
field, the foreground neutrino), each with a vacuum frequency `omega_k` (the positive
`dm^2 / 2E` of either species) and a species. The models carry flavour isospins
`s_k = sign_k P_k` (`sign = -1` for antineutrinos, physics.md section 10), on which every
class feels the one-body field

    h_k(t) = +/- omega_k B + lambda(t) L        (the sign: species times mass ordering)

(`B` the vacuum vector, `L` the matter axis, `lambda(t)` the matter potential) and every pair
couples by `mu(t) (1 - v_i.v_j)`, with `mu(t) = mu density(t)`. A model asks the system for
`field`, `turns`, `coupling`, `frequencies` and `signs`, and computes none of them itself; it
applies its encounters through the system's `encounter` (`_physics/encounter.py`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._sampling.angles import AbstractAngleModel, angle_model
from .._support.checks import (
    about,
    as_array,
    as_dtype,
    check_finite,
    check_option,
    check_positive,
    check_scalar,
    check_unit,
    check_vector,
    concrete,
)
from .encounter import AbstractEncounter, encounter_model
from .flavours import (
    check_flavours,
    default_matter_axis,
    dimension,
    flavour_count,
    mass_frame,
    pmns_vacuum,
    structure_constants,
    turn_matrices,
)
from .opacities import AbstractOpacities
from .profiles import AbstractProfile, Constant, profile

ORDERINGS = ("normal", "inverted")


def species_flags(antineutrino, n_classes: int, name: str = "antineutrino"):
    """The `antineutrino` option checked as one bool per class: a NumPy array, or the tracer
    it was given as."""
    if isinstance(antineutrino, (bool, np.bool_)):
        return np.full((n_classes,), bool(antineutrino))
    if isinstance(antineutrino, jax.core.Tracer):
        flags = antineutrino
    else:
        try:
            flags = np.asarray(antineutrino)
        except (TypeError, ValueError):
            flags = np.zeros(0)
        if flags.dtype != bool:
            flags = np.zeros(0)
    if flags.shape != (n_classes,) or flags.dtype != bool:
        raise ValueError(
            f"{name} must be True/False or one bool per group ({n_classes} groups), "
            f"got {antineutrino!r}"
        )
    return flags


def species(antineutrino, n_classes: int, name: str = "antineutrino") -> Array | None:
    """The `antineutrino` option as one bool per class, an array (traced where it was given
    traced), or None where every class is neutrinos."""
    flags = species_flags(antineutrino, n_classes, name)
    if not isinstance(flags, jax.core.Tracer) and not flags.any():
        return None
    return jnp.asarray(flags)


class System(eqx.Module):
    """A neutrino system: what defines the physics every model computes with.

    Made by the user with the physics of a run, before its particle classes are known:

        system = oj.System(gamma=0.1, mu=1.0, B=oj.mixing_vector(0.1), matter=2.0)

    - `gamma`: the impact parameter `mu t_int` (> 0).
    - `mu`: the coupling (> 0), a number or a profile of time (`Constant`, `Exponential`,
      `Samples`): a varying profile becomes `density` (and `mu = 1`), with `Stochastic(dt)`
      only (the meeting probability `mu(t) dt / gamma` must stay `<= 1` at every step).
    - `B`: the vacuum vector in the basis the states are written in. Two flavours: a unit
      vector (default: the mass basis, `(0, 0, -1)`; see `mixing_vector`); three: the vacuum
      vector `pmns_vacuum(ordering, basis, ...)` (default `pmns_vacuum(basis="mass")`), for
      which `omega = |dm2_3l| / 2E`.
    - `angles`: the angle model, `"isotropic"`, `"fixed-velocities"`, `"fixed-angle"` or an
      instance (`Isotropic()`, `FixedVelocities(...)`, `FixedAngle(theta)`).
    - `matter`: the matter potential `lambda` (a number or a profile of time; None: none)
      along the flavour axis `L` (default: the electron flavour of the flavour basis,
      `(0, 0, 1)`, or `flavour_axis(3)`; the default is refused where it commutes with `B`,
      whose matter would then change no flavour).
    - `ordering`: `"normal"` or `"inverted"` (two flavours: every vacuum frequency flips sign;
      for three the ordering is in `B`).
    - `encounter`: the pair's encounter, `"swap"` (`Swap()`, the OILE encounter
      `exp(-i c SWAP)`) or an `AbstractEncounter`; every model applies its encounters through
      it.
    - `opacities`: emission, absorption and scattering by the medium (physics.md section 14;
      None: none), one rate per class and flavour: `Opacities` (the kinetic equation of
      occupations, whose traces change: the mean fields `GroupField` and `MultiAngleField`,
      carrying each class's trace with its Bloch vector) or `Reemission` (each neutrino
      absorbed and re-emitted, its number kept: the OILE gas and the mean fields). A model that
      cannot apply them (the foreground, the many-body engine) refuses them.

    A model binds it to its particle classes (`bind`: the groups of a gas, the foreground
    neutrino, the angles of a multi-angle mean field), each with a vacuum frequency `omegas_k`
    (the positive `dm^2 / 2E` of either species) and a species (`antineutrino_k`), and
    validates it there, once, in its dtype and flavour count. Numbers and the species are
    traced leaves of the bound system (changing `gamma`, `mu` or a frequency does not
    recompile); the ordering and the flavour count are static."""

    omegas: Float[Array, " K"] | None
    gamma: Float[Array, ""]
    mu: Float[Array, ""]
    B: Float[Array, " D"] | None
    angles: AbstractAngleModel
    encounter: AbstractEncounter
    density: AbstractProfile | None = None
    matter: AbstractProfile | None = None
    L: Float[Array, " D"] | None = None
    antineutrino: Bool[Array, " K"] | None = None
    opacities: AbstractOpacities | None = None
    ordering: str = eqx.field(static=True, default="normal")

    def __init__(
        self,
        gamma,
        mu=1.0,
        B=None,
        angles="isotropic",
        matter=None,
        L=None,
        ordering="normal",
        encounter="swap",
        opacities=None,
        *,
        omegas=None,
        antineutrino=None,
        density=None,
    ):
        self.gamma, self.mu, self.B, self.angles = gamma, mu, B, angles
        self.matter, self.L, self.ordering = matter, L, ordering
        self.opacities = opacities
        self.encounter = encounter_model(encounter)
        self.omegas, self.antineutrino, self.density = omegas, antineutrino, density

    @property
    def bound(self) -> bool:
        """Whether the system is bound to its classes (validated, its numbers arrays)."""
        return self.omegas is not None

    def __check_init__(self):
        check_option(self.ordering, "ordering", ORDERINGS)
        if self.L is not None and self.matter is None:
            raise ValueError(
                "L is the axis of the matter potential: give matter=... with it (or leave L "
                "out); without matter it would change nothing"
            )
        if self.opacities is not None and not isinstance(self.opacities, AbstractOpacities):
            raise ValueError(
                f"opacities must be Opacities(rate, equilibrium, ...), Reemission(rate, "
                f"equilibrium) or None, got {self.opacities!r}"
            )
        if not self.bound:
            return
        D = jnp.shape(self.B)[-1] if jnp.ndim(self.B) else 0
        n = flavour_count(D, "B")
        if jnp.shape(self.B) != (D,):
            raise ValueError(f"B must have shape ({D},), got {jnp.shape(self.B)}")
        if n > 2 and self.ordering != "normal":
            raise ValueError(
                "ordering='inverted' is two-flavour only (it flips the two-flavour "
                "frequencies); for three flavours the mass ordering is part of the vacuum "
                "vector: pass B=pmns_vacuum('inverted', ...)"
            )
        if jnp.ndim(self.omegas) != 1:
            raise ValueError(
                f"omegas must be one vacuum frequency per group, shape (K,), got shape "
                f"{jnp.shape(self.omegas)}"
            )
        if self.antineutrino is not None and jnp.shape(self.antineutrino) != jnp.shape(self.omegas):
            raise ValueError(
                f"antineutrino must be one bool per group ({jnp.shape(self.omegas)[0]} groups), "
                f"got {self.antineutrino!r}"
            )
        if (self.matter is None) != (self.L is None):
            raise ValueError("matter and its axis L go together (System.bind gives L)")
        if self.L is not None and jnp.shape(self.L) != (D,):
            raise ValueError(f"L must have shape ({D},), got {jnp.shape(self.L)}")

    def bind(self, omegas, antineutrino=False, *, n_flavours: int = 2, dtype=jnp.float32):
        """This system bound to particle classes of vacuum frequencies `omegas` and species
        `antineutrino` (one bool per class, or one for all), for `n_flavours` flavours in
        `dtype`: every option checked, once, its errors naming it.

        `mu` a varying profile becomes `density` (and `mu = 1`); a constant profile its value.
        `matter` None, a number or a profile. `B` None: the mass basis (`(0, 0, -1)`; for three
        flavours `pmns_vacuum(basis="mass")`); `L` None: the electron flavour of the flavour
        basis, refused where it commutes with `B` (matter would then change no flavour).

        A system already bound to these classes (the same frequencies, species, flavour count and
        dtype) is returned as it is, checked once; one bound to other classes is refused. An
        error about one option is an `OptionError` naming it (`error.option`)."""
        if self.bound:
            return self._bound_to(omegas, antineutrino, n_flavours, dtype)
        gamma, mu, B, angles, matter, L = (
            self.gamma, self.mu, self.B, self.angles, self.matter, self.L
        )  # fmt: skip
        n = check_flavours(n_flavours)
        if B is None:
            B = (0.0, 0.0, -1.0) if n == 2 else pmns_vacuum("normal", "mass")
        angles = angle_model(angles)
        with about("gamma"):
            gamma = check_positive(check_scalar(gamma, "gamma", dtype), "gamma")
        density = None
        with about("mu"):
            if isinstance(mu, AbstractProfile) and not mu.constant:
                density, mu = profile(mu, "mu", dtype), jnp.ones((), dtype)
            elif isinstance(mu, AbstractProfile):
                mu = mu(0.0)  # a constant profile: its value
            elif callable(mu) and not isinstance(mu, jax.Array):
                profile(mu, "mu", dtype)  # refused, saying how to give a function of time
            mu = check_positive(check_scalar(mu, "mu", dtype), "mu")
        D = dimension(n)

        def axis(v, name, what=""):  # a unit vector (two flavours) or a finite one (three)
            v = check_vector(v, name, dtype, size=D, what=what)
            v = check_unit(v, name) if n == 2 else check_finite(v, name)
            if v.ndim != 1:
                raise ValueError(f"{name} must have shape ({D},), got {v.shape}")
            return v

        with about("B"):
            B = axis(B, "B", "the vacuum vector of the gas's flavours" if n > 2 else "")
        if matter is not None:
            with about("matter"):
                matter = profile(matter, "matter", dtype)
            with about("L"):
                L = axis(default_matter_axis(B, n) if L is None else L, "L")
        else:
            L = None
        with about("omegas"):
            omegas = as_array(omegas, "omegas", "an array of vacuum frequencies")
            if omegas.ndim != 1:
                raise ValueError(
                    f"omegas must be one vacuum frequency per group, shape (K,), got {omegas.shape}"
                )
            omegas = check_finite(as_dtype(omegas, jnp.dtype(dtype)), "omegas")
        opacities, flags = self.opacities, species(antineutrino, omegas.shape[0])
        if opacities is not None:
            with about("opacities"):
                opacities = opacities.bind(omegas.shape[0], n, dtype).for_classes(omegas, flags)
        return System(
            omegas=omegas,
            gamma=gamma,
            mu=mu,
            B=B,
            angles=angles,
            density=density,
            matter=matter,
            L=L,
            antineutrino=flags,
            ordering=self.ordering,
            encounter=self.encounter,
            opacities=opacities,
        )

    def _bound_to(self, omegas, antineutrino, n_flavours=None, dtype=None) -> "System":
        """This bound system, where it is bound to these classes (compared by value); else
        refused."""
        mine, theirs = concrete(self.omegas), concrete(jnp.asarray(omegas))
        flags = None if antineutrino is None else species_flags(antineutrino, jnp.shape(omegas)[0])
        my_flags = None if self.antineutrino is None else concrete(self.antineutrino)
        same = (
            mine is not None
            and theirs is not None
            and (self.antineutrino is None or my_flags is not None)
            and mine.shape == theirs.shape
            and np.array_equal(mine, theirs.astype(mine.dtype))
            and (n_flavours is None or n_flavours == self.n_flavours)
            and (dtype is None or jnp.dtype(dtype) == self.omegas.dtype)
            and (flags is None or not isinstance(flags, jax.core.Tracer))
            and np.array_equal(
                np.zeros(mine.shape, bool) if my_flags is None else my_flags,
                np.zeros(mine.shape, bool) if flags is None else np.asarray(flags),
            )
        )
        if not same:
            raise ValueError(
                "the system is already bound to other particle classes (frequencies, species, "
                "flavours or dtype); give the model a System(gamma, mu, B, ...) of its own"
            )
        return self

    def given(self, omegas, antineutrino=None) -> "System":
        """This system bound to classes of frequencies `omegas` and species `antineutrino`
        (one bool per class, or None) as its numbers are given: no value is checked, so that a
        mean field built inside `jit` or a derivative costs nothing more (`bind` validates).
        `mu` and `matter` may be numbers or profiles of time; `B` None is the two-flavour mass
        basis `(0, 0, -1)`. A system already bound to these classes is returned as it is."""
        if self.bound:
            return self._bound_to(omegas, antineutrino)
        omegas = jnp.asarray(omegas)
        mu, density = self.mu, None
        if isinstance(mu, AbstractProfile):
            density, mu = mu, jnp.ones((), jnp.result_type(float))
        B = jnp.asarray((0.0, 0.0, -1.0) if self.B is None else self.B)
        matter, L = self.matter, None
        if matter is not None:
            L = self.L
            if L is None:
                L = default_matter_axis(B, flavour_count(jnp.shape(B)[-1], "B"))
            L = jnp.asarray(L, B.dtype)
            if not isinstance(matter, AbstractProfile):
                matter = Constant(matter)
        flags = None if antineutrino is None else species(antineutrino, jnp.shape(omegas)[0])
        opacities = self.opacities
        if opacities is not None:
            n = flavour_count(jnp.shape(B)[-1], "B")
            opacities = opacities.bind(jnp.shape(omegas)[0], n, B.dtype, values=False)
            opacities = opacities.for_classes(omegas, flags)
        return System(
            omegas=omegas,
            gamma=jnp.asarray(self.gamma),
            mu=jnp.asarray(mu),
            B=B,
            angles=angle_model(self.angles),
            density=density,
            matter=matter,
            L=L,
            antineutrino=flags,
            ordering=self.ordering,
            encounter=self.encounter,
            opacities=opacities,
        )

    @property
    def n_flavours(self) -> int:
        """2 or 3, from the length of `B`."""
        return flavour_count(jnp.shape(self.B)[-1], "B")

    @property
    def n_classes(self) -> int:
        return jnp.shape(self.omegas)[0]

    @property
    def has_antineutrinos(self) -> bool:
        """Whether any class may be antineutrinos (the species were given)."""
        return self.antineutrino is not None

    def signs(self, dtype) -> Float[Array, " K"]:
        """The isospin sign of each class: `-1` for antineutrinos, `+1` for neutrinos."""
        if self.antineutrino is None:
            return jnp.ones(jnp.shape(self.omegas), dtype)
        return jnp.where(self.antineutrino, -1.0, 1.0).astype(dtype)

    def frequencies(self, dtype=None) -> Float[Array, " K"]:
        """The signed frequency of each class on isospins: `omega_k` times its species' sign,
        flipped by the inverted ordering (physics.md section 10)."""
        omegas = self.omegas if dtype is None else self.omegas.astype(dtype)
        if self.antineutrino is not None:
            omegas = omegas * self.signs(omegas.dtype)
        return -omegas if self.ordering == "inverted" else omegas

    @property
    def field_is_vacuum(self) -> bool:
        """Whether the one-body field is the vacuum's alone, `+/- omega_k B` (static; bound
        or not)."""
        return self.matter is None

    @property
    def field_is_constant(self) -> bool:
        """Whether the one-body field is constant in time (static)."""
        return self.matter is None or self.matter.constant

    def profiles(self) -> dict[str, AbstractProfile]:
        """The profiles of time the system holds, by their option: `mu` (its `density`),
        `matter` and the opacities' `scale` (a run checks each for overflow over its length)."""
        scale = None if self.opacities is None else self.opacities.scale
        named = (("mu", self.density), ("matter", self.matter), ("opacities scale", scale))
        return {name: prof for name, prof in named if prof is not None}

    def coupling(self, t):
        """`mu(t) = mu density(t)`."""
        return self.mu if self.density is None else self.mu * self.density(t)

    def step_length(self, schedule) -> Array:
        """The time one step of `schedule` lasts for this system's `gamma` and `mu`."""
        return schedule.step_length(self.gamma, self.mu)

    def field(self, t, dtype=None) -> Float[Array, "K D"]:
        """The one-body field of each class at time `t`, `+/- omega_k B + lambda(t) L` (the same
        vector on `P` and on the isospin `s`)."""
        dtype = dtype or self.B.dtype
        h = self.frequencies(dtype)[:, None] * self.B.astype(dtype)
        if self.matter is not None:
            h = h + self.matter(t).astype(dtype) * self.L.astype(dtype)
        return h

    def relaxing_turns(self, t, duration, dtype) -> Float[Array, "K D1 D1"]:
        """The exact map of each class's isospin over `duration` under its one-body field at
        time `t` and the system's `Reemission`: `(K, D + 1, D + 1)`, acting on `(s, 1)`,
        `exp(duration [[h *, 0], [0, 0]] + duration [[G, sign b], [0, 0]])` with `(G, b)` the
        Lindblad equation of `Reemission.generator` (the constant flips with an antineutrino's
        isospin `-Pbar`)."""
        h = self.field(t, dtype)
        K, D = h.shape
        f = jnp.asarray(structure_constants(self.n_flavours)[0], dtype)
        G, b = self.opacities.generator(t, K, self.n_flavours, dtype)
        A = jnp.einsum("abc,ka->kcb", f, h) + G  # (h * s)_c = f_abc h_a s_b
        top = jnp.concatenate([A, (self.signs(dtype)[:, None] * b)[:, :, None]], axis=2)
        generator = jnp.concatenate([top, jnp.zeros((K, 1, D + 1), dtype)], axis=1)
        return jax.scipy.linalg.expm(jnp.asarray(duration, dtype) * generator)

    def turns(self, t, duration, dtype=None) -> Float[Array, "K D D"]:
        """The turn of each class about its field at time `t` over `duration`:
        `exp(duration h_k *)`, `(K, D, D)`."""
        return turn_matrices(self.field(t, dtype), duration)

    def vacuum_frame(self, dtype):
        """`flavours.mass_frame` of `B` in `dtype`: the frame where the vacuum turns planes
        of two components, with each plane's factor."""
        return mass_frame(self.B.astype(dtype))

    def vacuum_angles(self, tau, steps: float, factor, dtype) -> Array:
        """The angle by which the vacuum turns a plane of factor `factor` of each class over
        `steps` steps of length `tau`: `frequency_k tau steps factor`."""
        return (self.frequencies() * tau * steps).astype(dtype) * factor.astype(dtype)
