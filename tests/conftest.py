"""Test configuration: float64 and strict dtype promotion, a fixed key, one allclose helper."""

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(20261123)


def assert_allclose(actual, desired, *, rtol: float, atol: float, err_msg: str = ""):
    """`numpy.testing.assert_allclose` with both tolerances explicit at every call."""
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(desired), rtol=rtol, atol=atol, err_msg=err_msg
    )
