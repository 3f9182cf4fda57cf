"""Closed forms for a foreground neutrino in a uniform, isotropic background (SPEC section 5).

Averaging the encounter over isotropic `x ~ U[0, 2]` with encounter rate `mu / gamma`:

    dP/dt = (omega B + mu_R P_b) x P - Gamma (P - P_b)
    mu_R  = mu sin^2(2 gamma) / (4 gamma^2)
    Gamma = (mu / gamma) (1/2 - sin(4 gamma) / (8 gamma))

a linear ODE, solved here exactly by the exponential of its 4x4 affine generator.
"""

import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm
from jaxtyping import Array, ArrayLike, Float

from ._checks import check_bloch, check_finite, check_nonnegative, check_positive, check_scalar, check_unit, check_vector

# Below this gamma the Taylor series replace the direct formulas, which lose digits to
# cancellation there; the series are cut after the g^8 term, whose successor is below float64
# rounding for gamma < 1e-2.
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


def encounter_averages(gamma: Float[ArrayLike, "..."]) -> tuple[Array, Array, Array]:
    """Per-encounter averages over isotropic `x ~ U[0, 2]`, `c = gamma x`:
    `(<cos^2 c>, <sin^2 c>, <sin c cos c>)`.

    `<cos^2 c> = 1/2 + sin(4 gamma)/(8 gamma)`, `<sin c cos c> = sin^2(2 gamma)/(4 gamma)`.
    """
    gamma = jnp.asarray(gamma, dtype=jnp.result_type(gamma, float))
    sin2 = gamma**2 * _sin2_over_g2(gamma)
    return 1 - sin2, sin2, gamma * _sincos_over_g(gamma)


def master_rates(gamma: Float[ArrayLike, "..."], mu: Float[ArrayLike, "..."] = 1.0) -> tuple[Array, Array]:
    """`(mu_R, Gamma)` of the foreground master equation; `gamma = 0` gives `(mu, 0)`.

    Both are the encounter rate `mu / gamma` times a per-encounter average.
    """
    gamma = jnp.asarray(gamma, dtype=jnp.result_type(gamma, float))
    mu = jnp.asarray(mu, dtype=gamma.dtype)
    return mu * _sincos_over_g(gamma), mu * gamma * _sin2_over_g2(gamma)


def _skew(h):
    zero = jnp.zeros_like(h[0])
    return jnp.stack(
        [
            jnp.stack([zero, -h[2], h[1]]),
            jnp.stack([h[2], zero, -h[0]]),
            jnp.stack([-h[1], h[0], zero]),
        ]
    )


def foreground_mean(
    P0: Float[ArrayLike, "... 3"],
    P_b: Float[ArrayLike, "3"],
    t: Float[ArrayLike, "T"],
    *,
    gamma: Float[ArrayLike, ""],
    mu: Float[ArrayLike, ""] = 1.0,
    omega: Float[ArrayLike, ""] = 0.0,
    B: Float[ArrayLike, "3"] = (0.0, 0.0, -1.0),
) -> Float[Array, "T ... 3"]:
    """Ensemble-mean Bloch vector of a foreground neutrino at times `t` (SPEC section 5).

    Exact solution of `dP/dt = (omega B + mu_R P_b) x P - Gamma (P - P_b)`, including
    `omega != 0`. `gamma = 0` is the mean field: coherent precession about `omega B + mu P_b`
    with `|P|` conserved. `B` is the unit vacuum direction in the basis `P0`, `P_b` are written in
    (default: mass basis, `(0, 0, -1)`). Times in units of `1/mu` when `mu = 1`.

    Returns shape `t.shape + P0.shape`.
    """
    dtype = jnp.result_type(float)
    P0 = check_bloch(check_vector(P0, "P0", dtype), "P0")
    P_b = check_bloch(check_vector(P_b, "P_b", dtype), "P_b")
    if P_b.ndim != 1:
        raise ValueError(f"P_b must have shape (3,), got {P_b.shape}")
    B = check_unit(check_vector(B, "B", dtype), "B")
    gamma = check_nonnegative(check_scalar(gamma, "gamma", dtype), "gamma")
    mu = check_positive(check_scalar(mu, "mu", dtype), "mu")
    omega = check_finite(check_scalar(omega, "omega", dtype), "omega")
    t = check_finite(jnp.asarray(t, dtype=dtype), "t")

    mu_R, Gamma = master_rates(gamma, mu)
    A = _skew(omega * B + mu_R * P_b) - Gamma * jnp.eye(3, dtype=dtype)
    generator = jnp.zeros((4, 4), dtype=dtype).at[:3, :3].set(A).at[:3, 3].set(Gamma * P_b)
    propagators = jax.vmap(lambda s: expm(s * generator))(t.reshape(-1))
    affine = jnp.concatenate([P0, jnp.ones(P0.shape[:-1] + (1,), dtype=dtype)], axis=-1)
    P = jnp.einsum("tij,...j->t...i", propagators[:, :3, :], affine)
    return P.reshape(t.shape + P0.shape)
