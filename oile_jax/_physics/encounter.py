"""The two-neutrino encounter (physics.md section 2) and exact vacuum propagation.

An encounter of neutrinos `i`, `j` applies `U = exp(-i c S)` (`S` = SWAP,
`c = gamma (1 - v_i.v_j)`) to `rho_i (x) rho_j` and traces out the pair's correlations:

    P_i' = cos^2 c P_i + sin^2 c P_j + sin c cos c (P_j x P_i)

and the same with `i <-> j`. The code writes this as `P_i + d`, `P_j - d` so that the pair's
total is conserved up to a single rounding and small `c` keeps full relative precision.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Complex, Float

from .._support.checks import check_if_concrete, check_physical_if_concrete
from .flavours import (
    dstar_array,
    flavour_count,
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
    """One once-in-a-lifetime encounter in Bloch form, of two neutrinos (or two antineutrinos).

    **Arguments:**
    - `P_i`, `P_j`: Bloch vectors of the two neutrinos, shapes broadcastable to `(..., 3)` (two
      flavours) or `(..., 8)` (three flavours, `P^a = Tr(rho lambda^a)`).
    - `c`: the encounter angle `gamma (1 - v_i.v_j)` (dimensionless), broadcastable to `(...)`.

    **Returns:** `(P_i', P_j')`, the one-body Bloch vectors after the encounter, with the
    pair's correlations traced out: `P_i' = cos^2 c P_i + sin^2 c P_j + sin c cos c (P_j * P_i)`
    (`*` the cross product for two flavours, `f_abc` for three; physics.md sections 2 and 11).
    Exact; `P_i' + P_j' = P_i + P_j`.
    """
    P_i, P_j, n, dtype = _pair(P_i, P_j)
    c = _angle(c, dtype)[..., None]
    d = jnp.sin(c) ** 2 * (P_j - P_i) + (jnp.sin(2 * c) / 2) * star_array(P_j, P_i, n)
    return P_i + d, P_j - d


def encounter_antineutrino(
    P: Float[Array, "... D"], Pbar: Float[Array, "... D"], c: Float[ArrayLike, "..."]
) -> tuple[Float[Array, "... D"], Float[Array, "... D"]]:
    """One encounter of a neutrino `P` and an antineutrino `Pbar` (its Bloch vector in the
    convention of physics.md section 10), two or three flavours.

    The pair evolves by `1 + (e^{i n c} - 1) |Phi+><Phi+|` and both partial traces change by the
    same amount (physics.md section 11): with `theta = n c`,
    `dP = dPbar = -A (P + Pbar) - E d(P, Pbar) - C (Pbar * P)`, `A = 2 (1 - cos theta)/n^2`,
    `C = sin(theta)/n`, `E = (1 - cos theta)/n`. **Returns** `(P', Pbar')`; `P - Pbar` is conserved.
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
    """One encounter in density-matrix form, for any number of flavours `n`.

    `rho_i' = cos^2 c rho_i + sin^2 c rho_j + i sin c cos c [rho_i, rho_j]` and the same with
    `i <-> j`: the partial traces of `U (rho_i (x) rho_j) U^dag` with `U = exp(-i c SWAP)`.
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
    """Exact vacuum propagation: rotate `P` right-handedly about the unit vector `B` by `angle`.

    This solves `dP/dt = omega B x P` over a time `t` with `angle = omega t`.
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
