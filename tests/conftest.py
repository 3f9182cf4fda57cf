"""Test configuration: float64 and strict dtype promotion, a fixed key, one allclose helper, and
an interrupted gas run."""

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


def interrupt_after_checkpoints(monkeypatch, n: int):
    """Make `simulate_gas` stop with KeyboardInterrupt (Ctrl-C) right after writing its `n`-th
    checkpoint, i.e. after `n` chunks; returns a function that undoes it."""
    from oile_jax import _simulate_gas

    write_checkpoint = _simulate_gas._write_checkpoint
    calls = []

    def interrupted(*args, **kwargs):
        write_checkpoint(*args, **kwargs)
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(_simulate_gas, "_write_checkpoint", interrupted)
    return lambda: monkeypatch.setattr(_simulate_gas, "_write_checkpoint", write_checkpoint)
