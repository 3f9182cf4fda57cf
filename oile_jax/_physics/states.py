"""One-particle states in `n` flavours (physics.md sections 1 and 11): generalized Bloch vectors
`P^a = Tr(rho lambda^a)`, density matrices `rho = 1/n + P.lambda / 2`, their occupations,
eigenvalues and entropy, flavour states, and the checks that a state is physical. Two flavours
are the special case `n = 2` (`lambda` the Pauli matrices, `P` the Bloch vector); the
two-flavour names `pauli`, `bloch_to_rho`, `rho_to_bloch` and `entropy` are kept as aliases of
`gell_mann(2)`, `density_matrix`, `bloch_vector` and `von_neumann_entropy` for Bloch vectors
of three components.

Two-flavour conventions (physics.md section 1): the vacuum Hamiltonian is `omega B` with
`B = (sin 2theta, 0, -cos 2theta)` in the flavour basis and `(0, 0, -1)` in the mass basis; a
pure nu_e is `(0, 0, 1)` in the flavour basis.
"""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float

from .._support.checks import (
    check_if_concrete,
    check_option,
    check_physical_if_concrete,
    check_vector,
    concrete,
)
from .flavours import (
    FLAVOUR_COUNTS,
    check_flavours,
    dstar_array,
    flavour_count,
    gell_mann,
)

BASES = ("flavour", "flavor", "mass")


def pauli(dtype=jnp.complex64) -> Complex[Array, "3 2 2"]:
    """The Pauli matrices (sigma_x, sigma_y, sigma_z): `gell_mann(2)` in `dtype`."""
    return jnp.asarray(gell_mann(2), dtype=dtype)


def complex_dtype(dtype):
    """The complex dtype of the same precision as the real `dtype`."""
    return jnp.complex128 if jnp.finfo(dtype).bits == 64 else jnp.complex64


def bloch_to_rho(P: Float[Array, "... 3"]) -> Complex[Array, "... 2 2"]:
    """Density matrix `(1 + P.sigma)/2` of two-flavour Bloch vector(s) `P`: `density_matrix`
    for three components."""
    return density_matrix(check_vector(P, "P", what="Bloch vectors (two flavours)"))


def rho_to_bloch(rho: Complex[Array, "... 2 2"]) -> Float[Array, "... 3"]:
    """Bloch vector `P_a = Tr(rho sigma_a)` of 2x2 density matrices: `bloch_vector` for two
    flavours."""
    rho = jnp.asarray(rho)
    if rho.ndim < 2 or rho.shape[-2:] != (2, 2):
        raise ValueError(f"rho must have shape (..., 2, 2), got {rho.shape}")
    return bloch_vector(rho)


def mixing_vector(
    theta: ArrayLike = 0.0, basis: str = "flavour", *, dtype=None
) -> Float[Array, "3"]:
    """Unit vacuum direction `B`: `(sin 2theta, 0, -cos 2theta)` (flavour) or `(0, 0, -1)` (mass).

    `theta` is the vacuum mixing angle in radians; it is ignored in the mass basis.
    """
    check_option(basis, "basis", BASES)
    check_if_concrete(theta, "theta")
    dtype = dtype or jnp.result_type(float)
    if basis == "mass":
        return jnp.asarray(np.array([0.0, 0.0, -1.0], dtype=dtype))
    value = concrete(theta)
    if value is not None:  # on the host: no program for a constant
        angle = 2 * value.astype(np.float64)
        return jnp.asarray(np.stack([np.sin(angle), 0 * angle, -np.cos(angle)]).astype(dtype))
    theta = jnp.asarray(theta, dtype=dtype)
    return jnp.stack([jnp.sin(2 * theta), jnp.zeros_like(theta), -jnp.cos(2 * theta)])


def nu_e(basis: str = "flavour", theta: ArrayLike = 0.0, *, dtype=None) -> Float[Array, "3"]:
    """Bloch vector of a pure electron neutrino.

    `(0, 0, 1)` in the flavour basis, `(sin 2theta, 0, cos 2theta)` in the mass basis.
    """
    check_option(basis, "basis", BASES)
    check_if_concrete(theta, "theta")
    dtype = dtype or jnp.result_type(float)
    theta = jnp.asarray(theta, dtype=dtype)
    if basis == "mass":
        return jnp.stack([jnp.sin(2 * theta), jnp.zeros_like(theta), jnp.cos(2 * theta)])
    return jnp.asarray([0.0, 0.0, 1.0], dtype=dtype)


def nu_x(basis: str = "flavour", theta: ArrayLike = 0.0, *, dtype=None) -> Float[Array, "3"]:
    """Bloch vector of a pure x neutrino, `-nu_e(basis, theta)`."""
    return -nu_e(basis, theta, dtype=dtype)


def entropy(P: Float[Array, "... 3"]) -> Float[Array, "..."]:
    """Von Neumann entropy (nats) of one two-flavour neutrino,
    `-sum_(+/-) (1 +/- |P|)/2 ln((1 +/- |P|)/2)`: `von_neumann_entropy` for three components,
    in closed form.

    Zero for a pure state, `ln 2` for `P = 0`. Safe (finite value and gradient) at |P| = 1.
    A concrete `P` must have shape `(..., 3)` and |P| <= 1.
    """
    P = check_vector(P, "P", what="Bloch vectors (two flavours)")
    check_physical_if_concrete(P, "P")
    r2 = jnp.clip(jnp.sum(P * P, axis=-1), 0.0, 1.0)
    # sqrt has an infinite derivative at 0; S is smooth there (S = ln 2 - |P|^2/2 + ...).
    nonzero = r2 > 0
    r = jnp.sqrt(jnp.where(nonzero, r2, 1.0))
    S = _xlogx_term((1 + r) / 2) + _xlogx_term((1 - r) / 2)
    return jnp.where(nonzero, S, jnp.log(jnp.asarray(2.0, dtype=S.dtype)))


def _xlogx_term(q):
    safe = jnp.where(q > 0, q, 1.0)
    return jnp.where(q > 0, -q * jnp.log(safe), 0.0)


def density_matrix(P: Float[ArrayLike, "... D"]) -> Array:
    """The density matrices `1/n + P.lambda / 2` of `n`-flavour Bloch vectors `P` (`D = 3, 8`)."""
    P = jnp.asarray(P)
    n = flavour_count(P.shape[-1])
    cdtype = jnp.complex128 if P.dtype == jnp.float64 else jnp.complex64
    lam = jnp.asarray(gell_mann(n), cdtype)
    return jnp.eye(n, dtype=cdtype) / n + jnp.einsum("...a,aij->...ij", P.astype(cdtype), lam) / 2


def bloch_vector(rho) -> Array:
    """The Bloch vectors `P^a = Tr(rho lambda^a)` of `n x n` density matrices `(..., n, n)`."""
    rho = jnp.asarray(rho)
    if rho.ndim < 2 or rho.shape[-1] != rho.shape[-2] or rho.shape[-1] not in FLAVOUR_COUNTS:
        raise ValueError(f"rho must have shape (..., n, n) with n = 2 or 3, got {rho.shape}")
    lam = jnp.asarray(gell_mann(rho.shape[-1]), rho.dtype)
    return jnp.real(jnp.einsum("...ij,aji->...a", rho, lam))


def occupations(P: Float[ArrayLike, "... D"]) -> Array:
    """The diagonal of `rho` (`(..., n)`, real): the probability of each basis state (each flavour
    in the flavour basis)."""
    from .._support.checks import concrete

    value = concrete(P)
    xp = jnp if value is None else np  # host values on the host: no program of their own
    P = jnp.asarray(P) if value is None else value
    n = flavour_count(P.shape[-1])
    diag = xp.asarray(np.real(np.einsum("aii->ai", gell_mann(n))), P.dtype)
    return xp.asarray(1.0 / n + P @ diag / 2)


def eigenvalues(P: Float[ArrayLike, "... D"]) -> Array:
    """The eigenvalues of `rho` `(..., n)`, elementwise in closed form: `(1 +/- |P|)/2` for two
    flavours, the trigonometric roots of the characteristic cubic for three (exact to rounding
    for distinct eigenvalues; within about `sqrt(eps)` of a degenerate pair, where `arccos`
    loses half the digits: use `invariants` to test positivity)."""
    P = jnp.asarray(P)
    n = flavour_count(P.shape[-1])
    r2 = jnp.sum(P * P, axis=-1)
    if n == 2:
        r = jnp.sqrt(r2)
        return jnp.stack([(1 - r) / 2, (1 + r) / 2], axis=-1)
    # rho = 1/3 + A with A traceless: Tr A^2 = |P|^2 / 2, det A = Tr A^3 / 3 = d(P, P).P / 12.
    det = jnp.sum(dstar_array(P, P, 3) * P, axis=-1) / 12
    p = jnp.sqrt(r2 / 12)  # sqrt(Tr A^2 / 6)
    safe = jnp.where(p > 0, p, 1.0)
    ratio = jnp.clip(det / (2 * safe**3), -1.0, 1.0)
    phi = jnp.arccos(ratio) / 3
    k = jnp.arange(3, dtype=P.dtype)
    roots = 2 * p[..., None] * jnp.cos(phi[..., None] - 2 * np.pi * k / 3)
    return 1.0 / 3 + jnp.where(p[..., None] > 0, roots, 0.0)


ENTROPY_SLACK = 1e-6


def von_neumann_entropy(P: Float[ArrayLike, "... D"]) -> Array:
    """`-Tr rho ln rho` (nats) of `n`-flavour Bloch vectors of density matrices (a concrete `P`
    with a negative eigenvalue, beyond rounding, is refused: its entropy is not defined)."""
    P = jnp.asarray(P)
    flavour_count(P.shape[-1] if P.ndim else 0, "P")
    check_if_concrete(P, "P")
    lam = eigenvalues(P)
    low = concrete(jnp.min(lam)) if P.size else None
    # Rounding (float32 runs: about 1e-7) may leave an eigenvalue a little below 0; a state
    # further below is not a density matrix, and its entropy is not defined.
    if low is not None and float(low) < -ENTROPY_SLACK:
        raise ValueError(
            f"P is unphysical: its density matrices must have no negative eigenvalue (smallest "
            f"eigenvalue about {float(low):.3g})"
        )
    lam = jnp.clip(lam, 0.0, 1.0)
    safe = jnp.where(lam > 0, lam, 1.0)
    return -jnp.sum(jnp.where(lam > 0, lam * jnp.log(safe), 0.0), axis=-1)


FLAVOURS = ("e", "mu", "tau")


def flavour_state(flavour: str = "e", n_flavours: int = 3, *, dtype=None) -> Float[Array, " D"]:
    """The Bloch vector of a pure flavour state (`"e"`, `"mu"`, `"tau"`; for two flavours `"e"`
    and `"x"`) in the flavour basis."""
    n = check_flavours(n_flavours)
    names = FLAVOURS[:n] if n == 3 else ("e", "x")
    check_option(flavour, "flavour", names)
    k = names.index(flavour)
    return jnp.asarray(np.real(gell_mann(n)[:, k, k]), dtype=dtype or jnp.result_type(float))


def invariants(P: Float[ArrayLike, "... D"]) -> tuple[Array, Array]:
    """`(Tr rho^2, det rho)` of `n`-flavour Bloch vectors, as polynomials in `P` (accurate where
    the eigenvalues are not: at degenerate ones). A Hermitian `rho` of trace 1 is a density
    matrix exactly when `Tr rho^2 <= 1` and `det rho >= 0` (two and three flavours)."""
    P = jnp.asarray(P)
    n = flavour_count(P.shape[-1])
    r2 = jnp.sum(P * P, axis=-1)
    purity = 1.0 / n + r2 / 2
    if n == 2:
        return purity, (1 - r2) / 4
    # det(1/3 + A), A traceless: 1/27 + e2(A)/3 + det A, e2(A) = -|P|^2/4, det A = d(P,P).P/12.
    return purity, 1.0 / 27 - r2 / 12 + jnp.sum(dstar_array(P, P, 3) * P, axis=-1) / 12


def check_state(P, name: str):
    """Finite `n`-flavour Bloch vectors (`D = 3` or `8` on the last axis) of density matrices:
    `|P| <= 1` for two flavours; `Tr rho^2 <= 1` and `det rho >= 0` (up to rounding) for
    three."""
    from .._support.checks import bloch_tolerance, check_bloch, check_finite, concrete, fail_if

    n = flavour_count(P.shape[-1], name)
    if n == 2:
        return check_bloch(P, name)
    P = check_finite(P, name)
    purity, det = invariants(P)
    tol = bloch_tolerance(P.dtype)
    bad = jnp.any(purity > 1 + tol) | jnp.any(det < -tol)
    low = concrete(jnp.min(eigenvalues(P))) if P.size else None
    shown = f" (smallest eigenvalue about {float(low):.3g})" if low is not None else ""
    return fail_if(
        P,
        bad,
        f"{name} is unphysical: its density matrices must have no negative eigenvalue{shown}",
    )


def check_state_if_concrete(P, name: str):
    """`check_state` where `P` is concrete; nothing is attached to traced values."""
    from .._support.checks import concrete

    value = concrete(P)
    if value is not None and value.size:
        check_state(jnp.asarray(value), name)
