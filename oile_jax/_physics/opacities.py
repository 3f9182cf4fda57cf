"""Collisions with the medium (physics.md section 14): emission and absorption of neutrinos by
matter, and direction-changing scattering, as terms of the quantum kinetic equations of the
mean field.

A class (a group of a gas, an angle, a mode of an energy-angle grid) holds the occupation
matrix of its neutrinos (or antineutrinos), `f = (N / n) 1 + P.lambda / 2` in the
`n`-flavour Bloch form of `flavours.py`: its trace `N` and its Bloch vector `P`. The medium
emits a flavour `alpha` at the rate `E_alpha` and absorbs it at `A_alpha` (rates diagonal in the
flavour basis of the states, per class: species, energy and direction):

    df/dt = (1/2){E, 1 - f} - (1/2){A, f} = E - (1/2){Gamma, f},    Gamma = E + A

(the blocking factor `1 - f` of emission only renames the rates: the term is affine in `f`), so
that each flavour's occupation relaxes to `f_eq,alpha = E_alpha / Gamma_alpha` at the rate
`Gamma_alpha`, and a coherence between flavours `alpha` and `beta` decays at
`(Gamma_alpha + Gamma_beta) / 2`. In Bloch components, with `g`, `e` the Bloch vectors of the
diagonal matrices `Gamma` and `E` (`g_0`, `e_0` their traces) and `d` the symmetric structure
constants (zero for two flavours):

    dN/dt = e_0 - g_0 N / n - g.P / 2
    dP/dt = e - (g_0 / n) P - (N / n) g - d(g, P) / 2

Direction-changing scattering moves neutrinos between classes of one species and energy,
without changing their flavour: with the classes' weights `w` (phase-space volumes: a group's
share, a quadrature weight) and a kernel `k_gh` (the rate from `h` into `g` per unit of `g`'s
weight), `df_g/dt = sum_h k_gh w_h f_h - (sum_h w_h k_hg) f_g`, which keeps `sum_g w_g f_g`.
Isotropic scattering at the rate `s_h` out of each class is `k_gh = s_h / W_g` over the classes
`h` of `g`'s species and frequency (`W_g` their total weight).
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._support.checks import as_array, check_finite, check_nonnegative, concrete, refuse
from .flavours import dstar_major, gell_mann, structure_constants
from .profiles import AbstractProfile, Constant, check_range, profile


def flavour_projectors(n: int) -> np.ndarray:
    """`(n, D)`: the Bloch vectors `Tr(Pi_alpha lambda)` of the flavour projectors of the
    flavour basis (`alpha = e, mu, tau`); the electron flavour's is the matter axis `L`."""
    lam = gell_mann(n)
    return np.stack([np.real(lam[:, a, a]) for a in range(n)])


def _rates(x, name: str, K: int, n: int, dtype, nonnegative: bool | None = True):
    """`x` as a `(K, n)` array: one number, one per flavour `(n,)`, one per class `(K, 1)` or
    one per class and flavour `(K, n)`; its values checked finite (and `>= 0` with
    `nonnegative`), or not at all with `nonnegative=None`."""
    x = as_array(x, name, f"rates of shape (), ({n},), ({K}, 1) or ({K}, {n})")
    if x.ndim > 2 or (x.ndim == 1 and x.shape != (n,)) or (
        x.ndim == 2 and (x.shape[0] != K or x.shape[1] not in (1, n))
    ):  # fmt: skip
        raise ValueError(
            f"{name} must be one number, one per flavour ({n},), one per class ({K}, 1) or one "
            f"per class and flavour ({K}, {n}) for {K} classes of {n} flavours, got shape "
            f"{x.shape}"
        )
    x = jnp.broadcast_to(x.astype(dtype), (K, n))
    if nonnegative is None:
        return x
    return check_nonnegative(x, name) if nonnegative else check_finite(x, name)


def _scattering(s, K: int, dtype, values: bool):
    """The isotropic scattering rates `s` as a `(K,)` array (one rate or one per class),
    checked `>= 0` with `values`."""
    s = as_array(s, "opacities scattering", f"rates of shape () or ({K},)")
    if s.ndim > 1 or (s.ndim == 1 and s.shape != (K,)):
        raise ValueError(
            f"opacities scattering must be one rate or one per class ({K},), got shape {s.shape}"
        )
    s = jnp.broadcast_to(s.astype(dtype), (K,))
    return check_nonnegative(s, "opacities scattering") if values else s


def isotropic_scattering(f, s, w, ids):
    """`df/dt` of isotropic scattering of the states `f` `(k, K)` (component-major) of classes
    of weights `w` `(K,)` at the rates `s` `(K,)` out of each class, among the classes of equal
    `ids` (`same_classes`): `sum_h s_h w_h f_h / W_g - s_g f_g`, `W_g` the classes' total
    weight."""
    K = f.shape[1]
    out = jax.ops.segment_sum((s * w * f).T, ids, num_segments=K)  # (K, k)
    total = jax.ops.segment_sum(w, ids, num_segments=K)
    share = jnp.where(total > 0, 1 / jnp.where(total > 0, total, 1), 0)[ids]
    return out[ids].T * share - s * f


def _rows_dot(a, b):
    """`sum_c a_c b_c` of component-major arrays `(D, K)`, written as a sum of rows: XLA's CPU
    reduction over the leading axis of a `(D, K)` array takes 10x longer."""
    return sum(a[c] * b[c] for c in range(a.shape[0]))


def _bloch(Pi, diagonal):
    """The Bloch vectors `(D, K)` of diagonal matrices given by their diagonals `(K, n)`: a sum
    over the `n` flavours, elementwise (a matrix product of inner size `n` is slower on CPU)."""
    return sum(Pi[a][:, None] * diagonal[:, a][None, :] for a in range(Pi.shape[0]))


class AbstractOpacities(eqx.Module):
    """Emission and absorption by the medium, a part of the `System`: rates `rate` and
    equilibrium occupations `equilibrium` per class and flavour (each `(K, n)` once bound),
    scaled in time by `scale`. `keeps_number`: whether each class keeps its number of neutrinos
    (states of trace 1, `Reemission`, which the OILE gas applies to its particles) or not
    (occupations whose traces change, `Opacities`, the mean fields only); `scattering` the
    rates of isotropic scattering among the classes of one species and frequency, or None."""

    rate: eqx.AbstractVar[Float[Array, "K n"]]
    equilibrium: eqx.AbstractVar[Float[Array, "K n"]]
    # Isotropic scattering, the rate out of each class (or None).
    scattering: eqx.AbstractVar[Float[Array, " K"] | None]
    scale: eqx.AbstractVar[AbstractProfile | None]
    keeps_number: eqx.AbstractClassVar[bool]

    @property
    @abc.abstractmethod
    def scatters(self) -> bool:
        """Whether there is a direction-changing term (static)."""

    @abc.abstractmethod
    def for_classes(self, frequencies, species) -> "AbstractOpacities":
        """These opacities with what their terms need of the classes' vacuum `frequencies` and
        `species` computed once, not at every evaluation of a field (the classes isotropic
        scattering mixes). Nothing derived from the rates is kept: a rate changed after binding
        (or differentiated) is the rate the terms use."""

    def bloch_rates(self, K: int, n: int, dtype) -> tuple[Array, ...]:
        """`(g_0, g, e_0, e, s)` at the rates' unit scale: the traces `(K,)` and Bloch vectors
        `(D, K)` (component-major) of `Gamma` and of the source `E = Gamma f_eq`, and the Bloch
        vector of `sigma = E / Tr E` (the re-emitted mixture; 0 where nothing is emitted)."""
        Pi = jnp.asarray(flavour_projectors(n), dtype)
        gamma = jnp.broadcast_to(jnp.asarray(self.rate, dtype), (K, n))
        source = gamma * jnp.broadcast_to(jnp.asarray(self.equilibrium, dtype), (K, n))
        e0 = jnp.sum(source, axis=1)
        sigma = source / jnp.where(e0 > 0, e0, 1)[:, None]
        return (jnp.sum(gamma, axis=1), _bloch(Pi, gamma), e0, _bloch(Pi, source),
                _bloch(Pi, sigma))  # fmt: skip

    @abc.abstractmethod
    def bind(self, n_classes: int, n_flavours: int, dtype, values: bool = True):
        """These opacities checked for `n_classes` classes of `n_flavours` flavours in `dtype`,
        every array in its full shape; errors name the option. `values=False` checks the shapes
        only (a field built inside `jit` or a derivative: no runtime check)."""

    def _bound(self, K: int, n: int, dtype, values: bool) -> tuple:
        """`(rate, equilibrium, scale)` bound as `bind` says."""
        rate = _rates(self.rate, "opacities rate", K, n, dtype, True if values else None)
        equilibrium = _rates(
            self.equilibrium, "opacities equilibrium", K, n, dtype, False if values else None
        )
        scale = self.scale
        if scale is not None and values:
            scale = profile(scale, "opacities scale", dtype)
        elif scale is not None and not isinstance(scale, AbstractProfile):
            scale = Constant(scale)
        return rate, equilibrium, scale

    def factor(self, t, dtype) -> Array:
        """The rates' scale at time `t` (1 without a profile)."""
        return jnp.ones((), dtype) if self.scale is None else self.scale(t).astype(dtype)

    def check_scale(self, times) -> None:
        """Refuse a concrete `scale` that is negative at one of `times` (it multiplies rates)."""
        if self.scale is not None:
            check_range(self.scale, times, "opacities scale", lower=0.0)


class Opacities(AbstractOpacities):
    r"""Emission, absorption and scattering of neutrinos by the medium (physics.md section 14),
    a part of the `System` (`System(..., opacities=Opacities(...))`): a mean field then carries
    each class's trace with its Bloch vector (states `(K, 1 + D)`, the trace first).

    - `rate`: $`\Gamma_\alpha = E_\alpha + A_\alpha`$, the emission plus absorption rate of each
      flavour (in units of `1 / mu` as the times are), `>= 0`: one number, one per flavour
      `(n,)`, one per class `(K, 1)` or one per class and flavour `(K, n)` (a class is one
      species, energy and direction: an antineutrino group has its own row).
    - `equilibrium`: the occupations $`f_{\mathrm{eq},\alpha} = E_\alpha / \Gamma_\alpha`$ each
    flavour relaxes
      to, in the units of the states' traces (a trace 1 per class is one occupied state: for
      occupations of phase space, `0 <= f_eq <= 1`); shaped as `rate`.
    - `scattering`: isotropic, flavour-blind scattering among the directions of one species and
      energy (classes of the same frequency and species, e.g. the rings of an `Axisymmetric`
      grid), at the rate `s_h` out of each class: one number or one per class `(K,)`.
    - `kernel`: instead, any scattering kernel `(K, K)`, `k_gh >= 0` the rate from class `h`
      into class `g` per unit of `g`'s weight.
    - `scale`: a profile of time (or a number) multiplying every rate: rates that follow the
      density of the medium.

    `Opacities.from_emission(emission, absorption, ...)` gives the rates as the medium's
    emission and absorption rates of each flavour. Rates are diagonal in the flavour basis of the
    states (the basis of `nu_e("flavour")` and of the matter axis): write the states and `B` in
    the flavour basis (`mixing_vector(theta)`)."""

    rate: Float[Array, "K n"]
    equilibrium: Float[Array, "K n"]
    scattering: Float[Array, " K"] | None = None
    kernel: Float[Array, "K K"] | None = None
    scale: AbstractProfile | None = None
    # The classes isotropic scattering mixes (`same_classes`), set by the system
    # (`for_classes`).
    classes: Int[Array, " K"] | None = None
    keeps_number = False

    def __init__(
        self, rate, equilibrium, scattering=None, kernel=None, scale=None, *, classes=None
    ):
        self.rate, self.equilibrium = rate, equilibrium
        self.scattering, self.kernel, self.scale = scattering, kernel, scale
        self.classes = classes

    def __check_init__(self):
        if self.scattering is not None and self.kernel is not None:
            raise ValueError(
                "Opacities: give scattering (isotropic, a rate) or kernel (any kernel), not both"
            )

    @classmethod
    def from_emission(cls, emission, absorption, scattering=None, kernel=None, scale=None):
        """The opacities of a medium that emits each flavour at the rates `emission` and absorbs
        it at `absorption` (`>= 0`, shaped as `rate`): `rate = emission + absorption` and
        `equilibrium = emission / rate` (0 where both vanish)."""
        E = jnp.asarray(emission, jnp.result_type(float))
        A = jnp.asarray(absorption, jnp.result_type(float))
        check_nonnegative(E, "Opacities emission")
        check_nonnegative(A, "Opacities absorption")
        rate = E + A
        return cls(rate, jnp.where(rate > 0, E / jnp.where(rate > 0, rate, 1), 0.0),
                   scattering, kernel, scale)  # fmt: skip

    @property
    def scatters(self) -> bool:
        return self.scattering is not None or self.kernel is not None

    def for_classes(self, frequencies, species) -> "Opacities":
        if self.scattering is None:
            return self
        return Opacities(
            self.rate, self.equilibrium, self.scattering, self.kernel, self.scale,
            classes=same_classes(jnp.asarray(frequencies), species),
        )  # fmt: skip

    def bind(self, n_classes, n_flavours, dtype, values=True) -> "Opacities":
        K, n = n_classes, n_flavours
        rate, equilibrium, scale = self._bound(K, n, dtype, values)
        scattering = kernel = None
        if self.scattering is not None:
            scattering = _scattering(self.scattering, K, dtype, values)
        if self.kernel is not None:
            k = as_array(self.kernel, "opacities kernel", f"a ({K}, {K}) array")
            if k.shape != (K, K):
                raise ValueError(
                    f"opacities kernel must have shape ({K}, {K}) (one rate density per pair of "
                    f"classes), got {k.shape}"
                )
            kernel = k.astype(dtype)
            if values:
                kernel = check_nonnegative(kernel, "opacities kernel")
        return Opacities(rate, equilibrium, scattering, kernel, scale)

    def change(self, t, N, P, weights, frequencies, species):
        """`(dN, dP)`: the change of the traces `N` `(K,)` and Bloch vectors `P` `(D, K)`
        (component-major) of classes of weights `weights` `(K,)`, vacuum `frequencies` and
        `species` (bools, or None: all neutrinos; the classes scattering into one another share
        both)."""
        D, K = P.shape
        n = {3: 2, 8: 3}[D]
        (g0, g, e0, e, _), factor = self.bloch_rates(K, n, P.dtype), self.factor(t, P.dtype)
        g0, g, e0, e = (factor * x for x in (g0, g, e0, e))
        dN = e0 - g0 * N / n - 0.5 * _rows_dot(g, P)
        dP = e - (g0 / n) * P - (N / n) * g
        if n > 2:
            dP = dP - 0.5 * dstar_major(g, P, n)
        if self.scatters:
            f = jnp.concatenate([N[None], P])  # (1 + D, K)
            df = self._scattered(f, factor, jnp.asarray(weights, P.dtype), frequencies, species)
            dN, dP = dN + df[0], dP + df[1:]
        return dN, dP

    def _scattered(self, f, factor, w, frequencies, species):
        """`sum_h k_gh w_h f_h - (sum_h w_h k_hg) f_g` of `f` `(k, K)`."""
        if self.kernel is not None:
            k = factor * jnp.asarray(self.kernel, f.dtype)
            return (f * w) @ k.T - (w @ k) * f
        K = f.shape[1]
        s = factor * jnp.broadcast_to(jnp.asarray(self.scattering, f.dtype), (K,))
        ids = self.classes if self.classes is not None else same_classes(frequencies, species)
        return isotropic_scattering(f, s, w, ids)


class Reemission(AbstractOpacities):
    r"""Emission and absorption as a process of the particles themselves, each keeping its number
    (physics.md section 14): a neutrino of state `rho` is absorbed at the rate
    `Tr(Gamma rho)` and at once re-emitted in the flavour mixture `sigma`, `sigma_alpha`
    proportional to `Gamma_alpha f_eq,alpha` (the emission rates). Averaged over the jumps each
    state follows the Lindblad equation

        d rho/dt = Tr(Gamma rho) sigma - (1/2){Gamma, rho},

    trace-preserving: every coherence decays at `(Gamma_alpha + Gamma_beta) / 2` as in
    `Opacities`, and the occupations relax to `f_eq` normalized to one neutrino. It is the
    kinetic equation of `Opacities` without Pauli blocking, its number held where emission
    balances absorption. The OILE gas applies it to every particle's state (the exact map of a
    step, with the one-body field), and the mean fields to the groups' states `(K, D)`, with or
    without OILE's collision term: at `gamma -> 0` the gas follows the mean field with it.

    `scattering`: isotropic, flavour-blind scattering at the rate `s` out of each class into the
    classes of its species and frequency (the directions of one energy: beams, rings of an
    `Axisymmetric` grid, fixed velocities), $`\dot f_g = s (\bar f - f_g)`$ with $`\bar f`$
    their weighted mean: one rate, or one per class `(K,)` equal among the classes it mixes (so that
    each class keeps its number). In the gas, two neutrinos of such classes that are paired in a
    step exchange their directions (their groups) with the probability that gives this rate
    (`swap_probabilities`).

    `rate`, `equilibrium` and `scale` as in `Opacities` (`equilibrium` only in proportion:
    where a class's rate is positive some flavour must be emitted)."""

    rate: Float[Array, "K n"]
    equilibrium: Float[Array, "K n"]
    scattering: Float[Array, " K"] | None = None
    scale: AbstractProfile | None = None
    # The classes scattering mixes (`same_classes`), set by the system (`for_classes`).
    classes: Int[Array, " K"] | None = None
    keeps_number = True

    def __init__(self, rate, equilibrium, scattering=None, scale=None, *, classes=None):
        self.rate, self.equilibrium = rate, equilibrium
        self.scattering, self.scale, self.classes = scattering, scale, classes

    @property
    def scatters(self) -> bool:
        return self.scattering is not None

    def for_classes(self, frequencies, species) -> "Reemission":
        if self.scattering is None:
            return self
        return Reemission(
            self.rate, self.equilibrium, self.scattering, self.scale,
            classes=same_classes(jnp.asarray(frequencies), species),
        )  # fmt: skip

    def bind(self, n_classes, n_flavours, dtype, values=True) -> "Reemission":
        rate, equilibrium, scale = self._bound(n_classes, n_flavours, dtype, values)
        if values:
            equilibrium = check_nonnegative(equilibrium, "opacities equilibrium")
            equilibrium = refuse(
                equilibrium,
                lambda xp, f: xp.any((xp.sum(f * rate, axis=1) <= 0) & xp.any(rate > 0, axis=1)),
                "opacities equilibrium: a class that absorbs (rate > 0) must emit some flavour "
                "(rate * equilibrium > 0 for one flavour at least): Reemission re-emits every "
                "absorbed neutrino",
            )
        scattering = self.scattering
        if scattering is not None:
            scattering = _scattering(scattering, n_classes, dtype, values)
        return Reemission(rate, equilibrium, scattering, scale)

    def check_even(self, frequencies, species, name: str) -> None:
        """Refuse concrete scattering rates that differ among the classes they mix: scattering
        out of a class at a rate other than into it would change the classes' numbers, which
        `Reemission` keeps."""
        if self.scattering is None:
            return
        ids = concrete(same_classes(jnp.asarray(frequencies), species))
        s = concrete(self.scattering)
        if ids is None or s is None:
            return
        s = np.broadcast_to(s, ids.shape)
        for c in np.unique(ids):
            rates = s[ids == c]
            if np.ptp(rates) > 1e-12 * max(np.abs(rates).max(), 1e-300):
                raise ValueError(
                    f"{name}: Reemission scattering must be equal among the classes it mixes "
                    f"(one species and frequency): got {sorted(set(rates.tolist()))} (each "
                    "class keeps its number of neutrinos; Opacities take rates that differ)"
                )

    def check_swaps(self, counts, tau, times) -> None:
        """Refuse, where the numbers are concrete, scattering faster than a gas of `counts`
        neutrinos in steps of length `tau` can give (a swap probability above 1 at one of the
        steps' midpoints `times`), with the largest step that can."""
        G = len(counts)
        factor = 1.0 if self.scale is None else concrete(self.scale(jnp.asarray(times)))
        s = concrete(jnp.broadcast_to(jnp.asarray(self.scattering), (G,)))
        ids = np.arange(G) if self.classes is None else concrete(self.classes)
        if factor is None or s is None or ids is None or tau is None:
            return
        n = np.asarray(counts, float)
        members = np.array([n[ids == ids[g]].sum() for g in range(G)])
        rate = np.asarray(s, float) * float(np.max(factor))
        worst = (n.sum() - 1) / members * -np.expm1(-rate * float(tau))
        if np.any(worst > 1):
            g = int(np.argmax(worst))
            largest = -np.log1p(-members[g] / (n.sum() - 1)) / rate[g]
            raise ValueError(
                f"opacities scattering: {rate[g]:g} out of group {g} is faster than the gas's "
                f"pairs can give with steps of {float(tau):g}: a neutrino finds a partner of its "
                f"species and frequency ({int(members[g])} of the {int(n.sum())} neutrinos) in "
                f"{members[g] / n.sum():.3g} of its pairs, and would have to exchange with it "
                f"with probability {worst[g]:.3g} > 1. Take steps of at most {largest:.3g} "
                "(Stochastic(dt)), or lower the rate"
            )

    def swap_probabilities(self, t, counts, tau, dtype) -> Array:
        """`(G,)`: for a gas of groups of `counts` neutrinos (the classes), the probability
        that two neutrinos of one species and frequency, paired in a step of length `tau`
        around time `t`, exchange their groups: `(N - 1) / M (1 - exp(-s tau))`, `M` the
        neutrinos of the groups they mix, so that each neutrino's state moves toward their
        mean as `1 - exp(-s tau)` a step (exactly, in the mean over the step's pairs)."""
        G = len(counts)
        n = jnp.asarray(counts, dtype)
        ids = self.classes if self.classes is not None else jnp.arange(G, dtype=jnp.int32)
        members = jax.ops.segment_sum(n, ids, num_segments=G)[ids]
        s = jnp.broadcast_to(jnp.asarray(self.scattering, dtype), (G,)) * self.factor(t, dtype)
        return (jnp.sum(n) - 1) / members * -jnp.expm1(-s * tau)

    def generator(self, t, K: int, n: int, dtype) -> tuple[Array, Array]:
        """`(G, b)`, `(K, D, D)` and `(K, D)`: the Lindblad equation on each class's Bloch vector
        at time `t`, `dP/dt = G P + b`: with `g`, `s` the Bloch vectors of `Gamma` and `sigma`,
        `G = s g^T / 2 - (g_0 / n) 1 - d(g, .) / 2` and `b = (g_0 / n) s - g / n`."""
        g0, g, _, _, s = self.bloch_rates(K, n, dtype)
        factor = self.factor(t, dtype)
        g0, g, s = factor * g0, factor * g.T, s.T  # per class: (K,), (K, D), (K, D)
        D = g.shape[1]
        d = jnp.asarray(structure_constants(n)[1], dtype)
        G = (
            0.5 * s[:, :, None] * g[:, None, :]
            - (g0 / n)[:, None, None] * jnp.eye(D, dtype=dtype)
            - 0.5 * jnp.einsum("abc,ka->kcb", d, g)
        )
        return G, (g0 / n)[:, None] * s - g / n

    def change(self, t, P, weights=None, frequencies=None, species=None) -> Array:
        """`dP/dt = G P + b` of the Bloch vectors `P` `(D, K)` (component-major), elementwise:
        `s (g.P) / 2 - (g_0 / n) (P - s) - g / n - d(g, P) / 2` without forming `G`; plus the
        scattering among classes of weights `weights`, vacuum `frequencies` and `species`
        (needed with scattering only)."""
        D, K = P.shape
        n = {3: 2, 8: 3}[D]
        (g0, g, _, _, s), factor = self.bloch_rates(K, n, P.dtype), self.factor(t, P.dtype)
        g0, g = factor * g0, factor * g
        dP = 0.5 * s * _rows_dot(g, P) - (g0 / n) * (P - s) - g / n
        if n > 2:
            dP = dP - 0.5 * dstar_major(g, P, n)
        if self.scattering is not None:
            rates = factor * jnp.broadcast_to(jnp.asarray(self.scattering, P.dtype), (K,))
            ids = self.classes if self.classes is not None else same_classes(frequencies, species)
            dP = dP + isotropic_scattering(P, rates, jnp.asarray(weights, P.dtype), ids)
        return dP


def same_classes(frequencies, species) -> Array:
    """`(K,)` integer ids, equal for the classes of the same vacuum frequency and species
    (those that isotropic scattering mixes): sorted, then numbered by the changes."""
    K = frequencies.shape[0]
    kind = jnp.zeros((K,), jnp.int32) if species is None else species.astype(jnp.int32)
    order = jnp.lexsort((frequencies, kind))
    f, k = frequencies[order], kind[order]
    new = jnp.concatenate([jnp.zeros((1,), bool), (f[1:] != f[:-1]) | (k[1:] != k[:-1])])
    return jnp.zeros((K,), jnp.int32).at[order].set(jnp.cumsum(new).astype(jnp.int32))


def check_scattering(
    opacities, frequencies, species, name: str, *, directions: bool, one_direction_per_class: bool
) -> None:
    """The refusals of scattering that cannot act on the classes (shared by the mean fields and
    the gas): classes without directions (`directions` false: angles drawn afresh at every
    encounter); isotropic scattering among classes that share no species and frequency, where
    each class holds one direction (`one_direction_per_class`: groups, or a multi-angle field's
    neutrinos; not the gas's groups of fixed velocities, whose neutrinos each have their own);
    and for `Reemission` rates that differ among the classes they mix."""
    if opacities is None or not opacities.scatters:
        return
    if not directions:
        raise ValueError(
            f"{name}: opacities scattering changes directions, and the angle model gives the "
            "groups none (each is isotropic already, its angles drawn afresh at every "
            "encounter): use Beams(directions) or Axisymmetric(u) groups, or fixed velocities "
            "(MultiAngleField; FixedVelocities() in the gas)"
        )
    if opacities.scattering is not None and one_direction_per_class:
        check_scatters_somewhere(frequencies, species, name)
    if isinstance(opacities, Reemission):
        opacities.check_even(frequencies, species, name)


def check_scatters_somewhere(frequencies, species, name: str) -> None:
    """Refuse isotropic scattering among classes that share no species and frequency (each one
    alone: the term would do nothing), where the classes are concrete."""
    ids = concrete(same_classes(jnp.asarray(frequencies), species))
    if ids is not None and np.unique(ids).size == ids.size:
        raise ValueError(
            f"{name}: isotropic scattering moves neutrinos between classes of one species and "
            "frequency (directions of one energy), and no two classes share both: it would do "
            "nothing. Give several directions per energy (mode_grid), or a kernel"
        )
