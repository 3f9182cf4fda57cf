"""One-neutrino states: Bloch vectors, density matrices, the vacuum direction `B`.

Conventions (physics.md section 1): `rho = (1 + P.sigma)/2`; the vacuum Hamiltonian is
`omega B` with `B = (sin 2theta, 0, -cos 2theta)` in the flavour basis and `(0, 0, -1)` in
the mass basis; a pure nu_e is `(0, 0, 1)` in the flavour basis.
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

BASES = ("flavour", "flavor", "mass")

_SIGMA = (
    ((0, 1), (1, 0)),
    ((0, -1j), (1j, 0)),
    ((1, 0), (0, -1)),
)


def pauli(dtype=jnp.complex64) -> Complex[Array, "3 2 2"]:
    """The Pauli matrices (sigma_x, sigma_y, sigma_z)."""
    return jnp.asarray(_SIGMA, dtype=dtype)


def complex_dtype(dtype):
    """The complex dtype of the same precision as the real `dtype`."""
    return jnp.complex128 if jnp.finfo(dtype).bits == 64 else jnp.complex64


def bloch_to_rho(P: Float[Array, "... 3"]) -> Complex[Array, "... 2 2"]:
    """Density matrix `(1 + P.sigma)/2` of Bloch vector(s) `P`."""
    P = check_vector(P, "P", what="Bloch vectors (two flavours)")
    cdtype = complex_dtype(P.dtype)
    sigma = pauli(cdtype)
    eye = jnp.eye(2, dtype=cdtype)
    return (eye + jnp.einsum("...a,aij->...ij", P.astype(cdtype), sigma)) / 2


def rho_to_bloch(rho: Complex[Array, "... 2 2"]) -> Float[Array, "... 3"]:
    """Bloch vector `P_a = Tr(rho sigma_a)` of 2x2 density matrices."""
    rho = jnp.asarray(rho)
    if rho.ndim < 2 or rho.shape[-2:] != (2, 2):
        raise ValueError(f"rho must have shape (..., 2, 2), got {rho.shape}")
    sigma = pauli(rho.dtype)
    return jnp.real(jnp.einsum("...ij,aji->...a", rho, sigma))


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
    """Von Neumann entropy (nats) of one neutrino, `-sum_(+/-) (1 +/- |P|)/2 ln((1 +/- |P|)/2)`.

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
