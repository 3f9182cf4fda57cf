"""The polynomial sine and cosine against NumPy in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oile_jax._support.trig import sin_cos, sin_cos_turns


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_sin_cos_match_numpy(dtype):
    """Over `[-100, 100]` radians and `[-3, 3]` turns (every quadrant, many periods, and the
    quadrant boundaries): within 2 units of the dtype's rounding of 1 of NumPy's float64 values,
    plus `|theta| eps` (the reduction of the argument in the dtype; for turns, NumPy's own
    rounding of `2 pi t`)."""
    eps = float(jnp.finfo(dtype).eps)
    theta = np.concatenate(
        [np.linspace(-100, 100, 200_001), np.arange(-64, 65) * np.pi / 4, [0.0, 1e-30, -1e-8]]
    ).astype(dtype)
    s, c = jax.jit(sin_cos)(jnp.asarray(theta))
    x = theta.astype(np.float64)
    bound = 2 * eps + np.abs(x) * eps
    assert np.all(np.abs(np.asarray(s, np.float64) - np.sin(x)) < bound)
    assert np.all(np.abs(np.asarray(c, np.float64) - np.cos(x)) < bound)
    assert s[-3] == 0 and c[-3] == 1 and s[-2] == theta[-2]  # sin r = r for tiny r
    turns = np.concatenate([np.linspace(-3, 3, 200_001), np.arange(-12, 13) / 8]).astype(dtype)
    s, c = jax.jit(sin_cos_turns)(jnp.asarray(turns))
    x = 2 * np.pi * turns.astype(np.float64)  # the reference rounds `2 pi t` (|x| eps)
    bound = 2 * eps + np.abs(x) * np.finfo(np.float64).eps
    assert np.all(np.abs(np.asarray(s, np.float64) - np.sin(x)) < bound)
    assert np.all(np.abs(np.asarray(c, np.float64) - np.cos(x)) < bound)


def test_small_angles_keep_their_relative_accuracy():
    """`sin c` for the small encounter angles of a gas (`c = gamma x`, gamma down to 1e-6): the
    relative error stays at the float32 rounding, which `1 - cos 2c` would not."""
    c = np.geomspace(1e-8, 1e-1, 1000).astype(np.float32)
    s, co = sin_cos(jnp.asarray(c))
    rel = np.abs(np.asarray(s, np.float64) / np.sin(c.astype(np.float64)) - 1)
    assert rel.max() < 2 * float(jnp.finfo(jnp.float32).eps)
    assert np.all(np.asarray(co) <= 1)


def test_derivatives_are_the_cosine_and_minus_the_sine():
    """Forward and reverse mode give `d sin = cos`, `d cos = -sin` (times `2 pi` in turns)
    within the values' own bound against NumPy (`(2 + |x|) eps`, scaled): the derivative of the
    functions, not of their polynomials (whose terms reverse mode would otherwise keep)."""
    theta = jnp.asarray(np.linspace(-40.0, 40.0, 1001))
    eps = np.finfo(np.float64).eps
    for f, scale in ((sin_cos, 1.0), (sin_cos_turns, 2 * np.pi)):
        x = scale * np.asarray(theta)
        bound = scale * (2 + np.abs(x)) * eps
        ds, dc = jax.jvp(f, (theta,), (jnp.ones_like(theta),))[1]
        assert np.all(np.abs(ds - scale * np.cos(x)) < bound)
        assert np.all(np.abs(dc + scale * np.sin(x)) < bound)
        grad_s = jax.vmap(jax.grad(lambda t, f=f: f(t)[0]))(theta)
        grad_c = jax.vmap(jax.grad(lambda t, f=f: f(t)[1]))(theta)
        assert np.all(np.abs(grad_s - scale * np.cos(x)) < bound)
        assert np.all(np.abs(grad_c + scale * np.sin(x)) < bound)
