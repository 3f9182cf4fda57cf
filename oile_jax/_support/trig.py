"""Sine and cosine as elementwise polynomials, for the gas step's per-pair angles.

XLA's CPU backend evaluates `jnp.sin` and `jnp.cos` one element at a time; a reduction to a
quarter period and a Taylor polynomial are plain multiplies and adds that XLA fuses and
vectorizes, several times faster (figures in `experiments/README.md`).
The polynomials have enough terms for the dtype: the truncation error on
`|r| <= pi/4` is below 1e-10 in float32 and 1e-17 in float64, under the rounding error.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

# Taylor terms of sin (odd powers, from r^3) and cos (even powers, from r^2) for each dtype.
_TERMS = {32: 5, 64: 8}


def _split(value: float, dtype, bits: int) -> tuple[Array, Array]:
    """`value` as `hi + lo` in `dtype`, `hi` with `bits` significant bits (so `k * hi` is exact
    for integers `|k| < 2^(mantissa - bits)`)."""
    exponent = math.frexp(value)[1]
    hi = math.floor(value * 2.0 ** (bits - exponent)) * 2.0 ** (exponent - bits)
    return jnp.asarray(hi, dtype), jnp.asarray(value - hi, dtype)


def _sin_cos_reduced(r, quadrant):
    """`(sin, cos)` of `r + quadrant pi / 2` for `|r| <= pi/4` and integer-valued `quadrant`."""
    terms = _TERMS[jnp.finfo(r.dtype).bits]
    r2 = r * r
    sin = cos = jnp.zeros_like(r)
    for k in range(terms, 0, -1):
        sin = r2 * (sin + (-1) ** k / math.factorial(2 * k + 1))
        cos = r2 * (cos + (-1) ** k / math.factorial(2 * k))
    sin = r + r * sin
    cos = 1 + cos
    q = quadrant.astype(jnp.int32) & 3
    swap = (q & 1) == 1
    s, c = jnp.where(swap, cos, sin), jnp.where(swap, sin, cos)
    return jnp.where(q >= 2, -s, s), jnp.where((q == 1) | (q == 2), -c, c)


@jax.custom_jvp
def sin_cos(theta: Float[Array, "..."]) -> tuple[Array, Array]:
    """`(sin theta, cos theta)` (radians), to the dtype's rounding for `|theta|` up to about
    `1e3` (float32) and `1e6` (float64); the reduction's error grows slowly beyond.
    Differentiable: the derivative is `(cos, -sin)` of the values (not the polynomial's own,
    whose reverse mode would keep every term of it)."""
    dtype = theta.dtype
    quadrant = jnp.round(theta * jnp.asarray(2 / np.pi, dtype))
    hi, lo = _split(np.pi / 2, dtype, 12 if dtype == jnp.float32 else 26)
    r = (theta - quadrant * hi) - quadrant * lo
    return _sin_cos_reduced(r, quadrant)


@sin_cos.defjvp
def _sin_cos_jvp(primals, tangents):
    sin, cos = sin_cos(*primals)
    (d,) = tangents
    return (sin, cos), (cos * d, -sin * d)


@jax.custom_jvp
def sin_cos_turns(t: Float[Array, "..."]) -> tuple[Array, Array]:
    """`(sin 2 pi t, cos 2 pi t)`: the angle in turns, whose reduction is exact."""
    quadrant = jnp.round(4 * t)
    r = (t - quadrant / 4) * jnp.asarray(2 * np.pi, t.dtype)
    return _sin_cos_reduced(r, quadrant)


@sin_cos_turns.defjvp
def _sin_cos_turns_jvp(primals, tangents):
    sin, cos = sin_cos_turns(*primals)
    d = tangents[0] * jnp.asarray(2 * np.pi, sin.dtype)
    return (sin, cos), (cos * d, -sin * d)
