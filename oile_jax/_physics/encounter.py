"""The two-neutrino encounter (physics.md section 2) and exact vacuum propagation.

Every model applies its encounters through the `System`'s encounter (`AbstractEncounter`,
`System.encounter`): the gas kernel on its pairs' component planes, the foreground model, the
many-body engine on the state vector, the mean fields through the encounter's first two orders in
`c`, and the foreground's master equation through its isotropic averages. `Swap`, the OILE
encounter `exp(-i c SWAP)`, is the one this package ships; the functions below are its forms.

An encounter of neutrinos `i`, `j` applies `U = exp(-i c S)` (`S` = SWAP,
`c = gamma (1 - v_i.v_j)`) to `rho_i (x) rho_j` and traces out the pair's correlations:

    P_i' = cos^2 c P_i + sin^2 c P_j + sin c cos c (P_j x P_i)

and the same with `i <-> j`. The code writes this as `P_i + d`, `P_j - d` so that the pair's
total is conserved up to a single rounding and small `c` keeps full relative precision.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float

from .._support.checks import check_if_concrete, check_option, check_physical_if_concrete
from .._support.trig import sin_cos
from .flavours import (
    dstar,
    dstar_array,
    flavour_count,
    star,
    star_array,
    turn_matrices,
)
from .states import (
    bloch_to_rho,
    check_state_if_concrete,
    complex_dtype,
    pauli,
    rho_to_bloch,
)


def _angle(c, dtype):
    c = jnp.asarray(c)
    if not (jnp.issubdtype(c.dtype, jnp.floating) or jnp.issubdtype(c.dtype, jnp.integer)):
        raise ValueError(f"c must be real, got dtype {c.dtype}")
    check_if_concrete(c, "c (the encounter angle)")
    return c.astype(dtype)


def _pair(P_i, P_j, names=("P_i", "P_j")):
    P_i = jnp.asarray(P_i)
    P_j = jnp.asarray(P_j)
    if P_i.shape[-1:] not in ((3,), (8,)) or P_j.shape[-1:] != P_i.shape[-1:]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have shape (..., 3) (two flavours) or both "
            f"(..., 8) (three flavours), got {P_i.shape} and {P_j.shape}"
        )
    check = check_physical_if_concrete if P_i.shape[-1] == 3 else check_state_if_concrete
    check(P_i, names[0])
    check(P_j, names[1])
    return P_i, P_j, flavour_count(P_i.shape[-1]), jnp.result_type(P_i, P_j)


def encounter(
    P_i: Float[Array, "... D"], P_j: Float[Array, "... D"], c: Float[ArrayLike, "..."]
) -> tuple[Float[Array, "... D"], Float[Array, "... D"]]:
    r"""One once-in-a-lifetime encounter in Bloch form, of two neutrinos (or two antineutrinos).

    **Arguments:**
    - `P_i`, `P_j`: Bloch vectors of the two neutrinos, shapes broadcastable to `(..., 3)` (two
      flavours) or `(..., 8)` (three flavours, `P^a = Tr(rho lambda^a)`).
    - `c`: the encounter angle `gamma (1 - v_i.v_j)` (dimensionless), broadcastable to `(...)`.

    **Returns:** `(P_i', P_j')`, the one-body Bloch vectors after the encounter, with the
    pair's correlations traced out (physics.md sections 2 and 11),

    $$`\mathbf{P}_i' = \cos^2 c\, \mathbf{P}_i + \sin^2 c\, \mathbf{P}_j + \sin c \cos c\,
    (\mathbf{P}_j \star \mathbf{P}_i)`$$

    with $`\star`$ the cross product for two flavours and $`f_{abc}`$ for three. Exact;
    $`\mathbf{P}_i' + \mathbf{P}_j' = \mathbf{P}_i + \mathbf{P}_j`$.
    """
    P_i, P_j, n, dtype = _pair(P_i, P_j)
    c = _angle(c, dtype)[..., None]
    d = jnp.sin(c) ** 2 * (P_j - P_i) + (jnp.sin(2 * c) / 2) * star_array(P_j, P_i, n)
    return P_i + d, P_j - d


def encounter_antineutrino(
    P: Float[Array, "... D"], Pbar: Float[Array, "... D"], c: Float[ArrayLike, "..."]
) -> tuple[Float[Array, "... D"], Float[Array, "... D"]]:
    r"""One encounter of a neutrino `P` and an antineutrino `Pbar` (its Bloch vector in the
    convention of physics.md section 10), two or three flavours.

    The pair evolves by $`1 + (e^{inc} - 1) |\Phi^+\rangle\langle\Phi^+|`$ and both partial
    traces change by the same amount (physics.md section 11): with $`\theta = nc`$,

    $$`\Delta\mathbf{P} = \Delta\bar{\mathbf{P}} = -A (\mathbf{P} + \bar{\mathbf{P}})
    - E\, d(\mathbf{P}, \bar{\mathbf{P}}) - C\, (\bar{\mathbf{P}} \star \mathbf{P}), \quad
    A = \frac{2 (1 - \cos\theta)}{n^2}, \quad C = \frac{\sin\theta}{n}, \quad
    E = \frac{1 - \cos\theta}{n}`$$

    **Returns** `(P', Pbar')`; $`\mathbf{P} - \bar{\mathbf{P}}`$ is conserved.
    For two flavours this is `encounter` on the isospins `P`, `-Pbar`.
    """
    P, Pbar, n, dtype = _pair(P, Pbar, ("P", "Pbar"))
    theta = n * _angle(c, dtype)[..., None]
    one_minus = 2 * jnp.sin(theta / 2) ** 2
    d = -(2 * one_minus / n**2) * (P + Pbar) - (jnp.sin(theta) / n) * star_array(Pbar, P, n)
    if n > 2:
        d = d - (one_minus / n) * dstar_array(P, Pbar, n)
    return P + d, Pbar + d


def encounter_rho(
    rho_i: Complex[Array, "... n n"], rho_j: Complex[Array, "... n n"], c: Float[ArrayLike, "..."]
) -> tuple[Complex[Array, "... n n"], Complex[Array, "... n n"]]:
    r"""One encounter in density-matrix form, for any number of flavours `n`.

    $$`\rho_i' = \cos^2 c\, \rho_i + \sin^2 c\, \rho_j + i \sin c \cos c\, [\rho_i, \rho_j]`$$

    and the same with $`i \leftrightarrow j`$: the partial traces of
    $`U (\rho_i \otimes \rho_j) U^\dagger`$ with $`U = e^{-icS}`$, $`S`$ the SWAP.
    Shapes `(..., n, n)`; `c` broadcastable to `(...)`.
    """
    rho_i = jnp.asarray(rho_i)
    rho_j = jnp.asarray(rho_j)
    if rho_i.ndim < 2 or rho_i.shape[-1] != rho_i.shape[-2] or rho_i.shape[-2:] != rho_j.shape[-2:]:
        raise ValueError(
            f"rho_i and rho_j must be square matrices of one size (..., n, n), "
            f"got {rho_i.shape} and {rho_j.shape}"
        )
    cdtype = complex_dtype(jnp.result_type(rho_i, rho_j))
    rho_i = rho_i.astype(cdtype)
    rho_j = rho_j.astype(cdtype)
    c = _angle(c, jnp.finfo(cdtype).dtype)[..., None, None]
    commutator = rho_i @ rho_j - rho_j @ rho_i
    sin2 = (jnp.sin(c) ** 2).astype(cdtype)
    i_sincos = jax.lax.complex(jnp.zeros_like(c), jnp.sin(2 * c) / 2)
    d = sin2 * (rho_j - rho_i) + i_sincos * commutator
    return rho_i + d, rho_j - d


def vacuum_rotation(
    P: Float[Array, "... 3"], angle: Float[ArrayLike, "..."], B: Float[ArrayLike, "3"]
) -> Float[Array, "... 3"]:
    r"""Exact vacuum propagation: rotate `P` right-handedly about the unit vector `B` by `angle`.

    This solves $`d\mathbf{P}/dt = \omega \mathbf{B} \times \mathbf{P}`$ over a time $`t`$ with
    `angle` $`= \omega t`$.
    """
    P = jnp.asarray(P)
    B = jnp.asarray(B, dtype=P.dtype)
    angle = _angle(angle, P.dtype)
    # The turn about the field `angle B` over a unit time (exactly the identity at angle 0).
    R = turn_matrices(angle[..., None] * B, 1.0)
    return jnp.einsum("...ij,...j->...i", R, P)


def pair_unitary(
    c: Float[ArrayLike, "..."],
    phase_i: Float[ArrayLike, "..."],
    phase_j: Float[ArrayLike, "..."],
    B: Float[ArrayLike, "3"],
    *,
    dtype=None,
) -> Complex[Array, "... 4 4"]:
    """`exp(-i t_int H)` for `H = (omega_i/2) B.sigma_i + (omega_j/2) B.sigma_j + (c/t_int) SWAP`.

    Arguments are dimensionless: `c`, and the vacuum phases `phase_i = omega_i t_int`,
    `phase_j = omega_j t_int`. Basis `(ee, ex, xe, xx)` of the basis `B` is written in.

    Closed form: `H` conserves `B.(sigma_i + sigma_j)`, so `U` is a phase on each of the two
    aligned states `|uu>`, `|dd>` (eigenstates of `B.sigma` on both neutrinos) and a 2x2 rotation
    `exp(-i (b Z + c X))`, `b = (phase_i - phase_j)/2`, in the one-excitation block.
    """
    dtype = dtype or jnp.result_type(c, phase_i, phase_j, float)
    cdtype = complex_dtype(dtype)
    c, phase_i, phase_j = (
        jnp.asarray(x, dtype=dtype)[..., None, None] for x in (c, phase_i, phase_j)
    )
    B = jnp.asarray(B, dtype=dtype)
    Bs = jnp.einsum("a,aij->ij", B.astype(cdtype), pauli(cdtype))
    eye2 = jnp.eye(2, dtype=cdtype)
    Bi = jnp.kron(Bs, eye2)
    Bj = jnp.kron(eye2, Bs)
    eye4 = jnp.eye(4, dtype=cdtype)
    up = (eye4 + Bi) @ (eye4 + Bj) / 4
    down = (eye4 - Bi) @ (eye4 - Bj) / 4
    block = eye4 - up - down
    delta = (Bi - Bj) / 2
    swap_block = swap_matrix(cdtype) - up - down
    a = (phase_i + phase_j) / 2
    b = (phase_i - phase_j) / 2
    e2 = b**2 + c**2
    e = jnp.sqrt(jnp.where(e2 > 0, e2, 1.0))
    e = jnp.where(e2 > 0, e, 0.0)
    sinc = jnp.sinc(e / jnp.pi)
    phase = lambda x: jnp.exp(-1j * x.astype(cdtype))
    return (
        phase(a + c) * up
        + phase(c - a) * down
        + jnp.cos(e).astype(cdtype) * block
        - 1j * sinc.astype(cdtype) * (b.astype(cdtype) * delta + c.astype(cdtype) * swap_block)
    )


def swap_matrix(dtype=jnp.complex64) -> Array:
    """The SWAP operator on two qubits in the basis (ee, ex, xe, xx)."""
    return jnp.asarray(
        [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
        dtype=dtype,
    )


def partial_traces(
    rho: Complex[Array, "... 4 4"],
) -> tuple[Complex[Array, "... 2 2"], Complex[Array, "... 2 2"]]:
    """The one-body density matrices `(Tr_j rho, Tr_i rho)` of a two-neutrino state."""
    r = rho.reshape(rho.shape[:-2] + (2, 2, 2, 2))
    return jnp.einsum("...ikjk->...ij", r), jnp.einsum("...kikj->...ij", r)


def encounter_vacuum(
    P_i: Float[Array, "... 3"],
    P_j: Float[Array, "... 3"],
    c: Float[ArrayLike, "..."],
    *,
    phase_i: Float[ArrayLike, "..."],
    phase_j: Float[ArrayLike, "..."],
    B: Float[ArrayLike, "3"],
) -> tuple[Float[Array, "... 3"], Float[Array, "... 3"]]:
    """An encounter with vacuum oscillation during it (OILE I option).

    The pair evolves for `t_int` under `(omega_i/2) B.sigma_i + (omega_j/2) B.sigma_j + (c/t_int) S`
    (see `pair_unitary`; `phase_k = omega_k t_int`), then both partial traces are taken.
    With zero phases this equals `encounter`; with `c = 0` each neutrino precesses about `B`.
    """
    P_i = jnp.asarray(P_i)
    P_j = jnp.asarray(P_j)
    if P_i.shape[-1:] != (3,) or P_j.shape[-1:] != (3,):
        raise ValueError(f"P_i and P_j must have shape (..., 3), got {P_i.shape} and {P_j.shape}")
    dtype = jnp.result_type(P_i, P_j)
    U = pair_unitary(c, phase_i, phase_j, B, dtype=dtype)
    rho_i, rho_j = bloch_to_rho(P_i), bloch_to_rho(P_j)
    pair = jnp.einsum("...ij,...kl->...ikjl", rho_i, rho_j)
    pair = pair.reshape(pair.shape[:-4] + (4, 4))
    pair = U @ pair @ jnp.conj(jnp.swapaxes(U, -1, -2))
    new_i, new_j = partial_traces(pair)
    new_i, new_j = rho_to_bloch(new_i).astype(dtype), rho_to_bloch(new_j).astype(dtype)
    # The exact map conserves B.(P_i + P_j); the 4x4 products in complex arithmetic do so only
    # to rounding, with a bias that accumulates over many encounters (a relative drift of
    # the lepton number in float32 that grows with the rounds). Restore it along B.
    B = jnp.asarray(B, dtype)
    excess = (new_i + new_j - P_i - P_j) @ B
    return new_i - (excess / 2)[..., None] * B, new_j - (excess / 2)[..., None] * B


def bit_swap_index(n: int, i, j) -> Array:
    """For every basis index of `n` neutrinos, the index with the bits of neutrinos `i` and `j`
    exchanged (neutrino `k` is bit `n - 1 - k`)."""
    b = jnp.arange(2**n, dtype=jnp.int32)
    si, sj = n - 1 - i, n - 1 - j
    diff = ((b >> si) ^ (b >> sj)) & 1
    return b ^ ((diff << si) | (diff << sj))


def apply_encounter(psi: Complex[Array, " D"], i, j, c) -> Complex[Array, " D"]:
    """`exp(-i c S_ij) psi` on a state vector of `2^n` amplitudes; `i`, `j` may be traced."""
    n = int(np.log2(psi.shape[0]))
    swapped = psi[bit_swap_index(n, i, j)]
    c = jnp.asarray(c, dtype=jnp.finfo(psi.dtype).dtype)
    return jnp.cos(c).astype(psi.dtype) * psi - 1j * jnp.sin(c).astype(psi.dtype) * swapped


# Below this gamma the Taylor series replace the direct formulas of the isotropic averages,
# which lose digits to cancellation there; the series are cut after the g^8 term, whose
# successor is below float64 rounding for gamma < 1e-2.
_SERIES_BELOW = 1e-2


def _where_small(gamma, series, direct):
    small = jnp.abs(gamma) < _SERIES_BELOW
    safe = jnp.where(small, _SERIES_BELOW, gamma)
    return jnp.where(small, series(gamma), direct(safe))


def _sin2_over_g2(g):
    """`<sin^2 c> / gamma^2 = (1/2 - sin(4g)/(8g)) / g^2`."""
    return _where_small(
        g,
        lambda g: 4 / 3 - g**2 * (16 / 15 - g**2 * (128 / 315 - g**2 * (256 / 2835))),
        lambda g: (0.5 - jnp.sin(4 * g) / (8 * g)) / g**2,
    )


def _sincos_over_g(g):
    """`<sin c cos c> / gamma = sin^2(2g) / (4 g^2)`."""
    return _where_small(
        g,
        lambda g: 1 - g**2 * (4 / 3 - g**2 * (32 / 45 - g**2 * (64 / 315))),
        lambda g: jnp.sin(2 * g) ** 2 / (4 * g**2),
    )


class AbstractEncounter(eqx.Module):
    """The Hamiltonian of a pair's encounter, `exp(-i c H_pair)` at the encounter angle
    `c = gamma (1 - v_i.v_j)`, and every form in which the models apply it (physics.md sections
    2, 5, 6, 9 and 11). A `System` carries one (`System.encounter`); the gas kernel, the
    foreground model, the many-body engine, the mean fields and the foreground's master
    equation call these methods and compute none of it themselves.

    The one-body map is written as changes: `P_a' = P_a + d_a` for each of a pair, with
    `d_a = change(P_a, P_b)` (the same function for both rows, each with its partner)."""

    # Whether the change of a pair of one species is antisymmetric, `d_b = -d_a` (the pair's
    # total conserved): the gas then computes one change per pair.
    antisymmetric: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def coefficients(self, c) -> tuple[Array, ...]:
        """The per-pair coefficients of the Bloch map at angles `c`, shaped as `c`."""

    @abc.abstractmethod
    def mixed_coefficients(self, c, coefficients, anti, n: int) -> tuple:
        """`(coefficients, mixed)` on each row of pairs that may be a neutrino and an
        antineutrino (three flavours): `anti` `(2, k)` whether each row holds an antineutrino;
        `c` and `coefficients` on both rows `(2, k)`; `mixed` the coefficient of the extra term
        of a nu-nubar pair (zero for a pair of one species)."""

    @abc.abstractmethod
    def change(self, Pa, Pb, coefficients, n: int, mixed=None) -> tuple:
        """The change `d_a` of `Pa` meeting `Pb`, vectors as component tuples (`n` flavours)."""

    @abc.abstractmethod
    def bloch(self, P_i, P_j, c) -> tuple[Array, Array]:
        """`(P_i', P_j')` of two neutrinos (or two antineutrinos) meeting, arrays `(..., D)`."""

    @abc.abstractmethod
    def bloch_antineutrino(self, P, Pbar, c) -> tuple[Array, Array]:
        """`(P', Pbar')` of a neutrino meeting an antineutrino, arrays `(..., D)`."""

    @abc.abstractmethod
    def with_vacuum(self, P_i, P_j, c, *, phase_i, phase_j, B) -> tuple[Array, Array]:
        """The encounter with the vacuum acting during it (`Deterministic(vacuum="inside")`,
        two flavours; `phase_k = omega_k t_int`)."""

    @abc.abstractmethod
    def on_state_vector(self, psi, i, j, c) -> Array:
        """`exp(-i c H_ij) psi` on the many-body state vector (`i`, `j` may be traced)."""

    @abc.abstractmethod
    def isotropic_rates(self, gamma, mu) -> tuple[Array, Array]:
        """`(mu_R, Gamma)` of a foreground neutrino's master equation in an isotropic
        background, `dP/dt = (omega B + mu_R P_b) x P - Gamma (P - P_b)`: the encounter rate
        `mu / gamma` times the per-encounter averages over `x ~ U[0, 2]`."""

    @abc.abstractmethod
    def forward_field(self, partners):
        """The mean field's first order in `c`: the one-body field `(..., D)` that the
        partners' isospins exert, given their sum `partners` weighted by `mu (1 - v_i.v_j)`
        (linear in it)."""

    @abc.abstractmethod
    def collision_change(self, s, sign, weight, partners, other, n: int):
        """The mean field's second order in `c`: the change of each isospin `s` `(K, D)` (of
        isospin sign `sign`, `(K,)`, or None where all are neutrinos) from its partners, per
        unit of `mu gamma`, given the partners' weights `sum_j (1 - v_i.v_j)^2` (`weight`,
        `(K,)`), their isospins so weighted (`partners`) and those of the other species
        (`other`, None where every pair is of one species)."""


class Swap(AbstractEncounter):
    """The once-in-a-lifetime encounter `exp(-i c SWAP)` (physics.md section 2): a pair of one
    species exchanges flavour,
    `P_i' = cos^2 c P_i + sin^2 c P_j + sin c cos c (P_j * P_i)`; a neutrino and an antineutrino
    meet by `1 + (e^{i n c} - 1) |Phi+><Phi+|` (physics.md section 11)."""

    antisymmetric = True

    def coefficients(self, c):
        """`(sin^2 c, sin c cos c)`."""
        sin, cos = sin_cos(c)
        return sin * sin, sin * cos

    def mixed_coefficients(self, c, coefficients, anti, n):
        """A nu-nubar pair: on isospins `A = 2 (1 - cos nc) / n^2`, `C = sin(nc) / n` and
        `+/- (1 - cos nc) / n` (the neutrino's row `+`) on `d(Pa, Pb)`; a pair of one species
        keeps `(sin^2 c, sin c cos c, 0)`."""
        sin2, sincos = coefficients
        mixed = anti[0] != anti[1]
        s = sin_cos(n * c)[0]
        one_minus = 2 * sin_cos(n * c / 2)[0] ** 2
        A = jnp.where(mixed, 2 * one_minus / n**2, sin2)
        C = jnp.where(mixed, s / n, sincos)
        sign = jnp.where(anti, -1.0, 1.0).astype(c.dtype)
        D = jnp.where(mixed, sign * one_minus / n, 0.0)
        return (A, C), D

    def change(self, Pa, Pb, coefficients, n, mixed=None):
        """`sin^2 c (Pb - Pa) + sin c cos c (Pb * Pa)` (`*` the cross product for two
        flavours), plus `mixed d(Pa, Pb)` for a nu-nubar pair."""
        sin2, sincos = coefficients
        d = tuple(
            sin2 * (b - a) + sincos * x for a, b, x in zip(Pa, Pb, star(Pb, Pa, n), strict=True)
        )
        if mixed is None:
            return d
        return tuple(x + mixed * y for x, y in zip(d, dstar(Pa, Pb, n), strict=True))

    def bloch(self, P_i, P_j, c):
        return encounter(P_i, P_j, c)

    def bloch_antineutrino(self, P, Pbar, c):
        return encounter_antineutrino(P, Pbar, c)

    def with_vacuum(self, P_i, P_j, c, *, phase_i, phase_j, B):
        return encounter_vacuum(P_i, P_j, c, phase_i=phase_i, phase_j=phase_j, B=B)

    def on_state_vector(self, psi, i, j, c):
        return apply_encounter(psi, i, j, c)

    def isotropic_averages(self, gamma) -> tuple[Array, Array, Array]:
        """`(<cos^2 c>, <sin^2 c>, <sin c cos c>)` over `x ~ U[0, 2]`, `c = gamma x`:
        `<cos^2 c> = 1/2 + sin(4 gamma)/(8 gamma)`, `<sin c cos c> = sin^2(2 gamma)/(4 gamma)`."""
        sin2 = gamma**2 * _sin2_over_g2(gamma)
        return 1 - sin2, sin2, gamma * _sincos_over_g(gamma)

    def isotropic_rates(self, gamma, mu):
        """`mu_R = mu sin^2(2 gamma) / (4 gamma^2)`, `Gamma = (mu / gamma) <sin^2 c>`."""
        return mu * _sincos_over_g(gamma), mu * gamma * _sin2_over_g2(gamma)

    def forward_field(self, partners):
        """`sin c cos c = c + O(c^3)`: the partners' isospins themselves."""
        return partners

    def collision_change(self, s, sign, weight, partners, other, n):
        """`sin^2 c = c^2 + O(c^4)`: `partners - weight s`, and for nu-nubar pairs in three
        flavours `sign (n/2) d(s, other)` (`(1 - cos nc)/n = (n/2) c^2 + ...`, on the
        neutrino's row `+`)."""
        ds = partners - weight[:, None] * s
        if other is not None and n > 2:
            ds = ds + sign[:, None] * (n / 2) * dstar_array(s, other, n)
        return ds


ENCOUNTERS = {"swap": Swap}


def encounter_model(encounter: "str | AbstractEncounter") -> AbstractEncounter:
    """Resolve an encounter option: an instance, or one of `ENCOUNTERS` by name."""
    if isinstance(encounter, AbstractEncounter):
        return encounter
    check_option(encounter, "encounter", tuple(ENCOUNTERS))
    return ENCOUNTERS[encounter]()
