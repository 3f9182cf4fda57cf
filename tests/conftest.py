"""Test configuration: XLA's quick code generation, float64 and strict dtype promotion, a fixed
key, one allclose helper, and an interrupted gas run."""

import os

import numpy as np
import pytest

# The suite is bound by XLA compilation (hundreds of small programs, each run briefly), and a
# third of that is the backend's machine-code optimization. Level 0 changes the generated code
# only, not XLA's HLO program (fusion, reduction order): floating-point results may differ
# from an optimized build's by rounding, which no test relies on (every comparison across
# programs allows rounding, see `assert_same_to_rounding`). The time it saves is in the README
# ("Development"). Set OILE_TEST_OPTIMIZED=1 to test the optimized code instead (`make
# gpu-check` does). Subprocesses started by the tests inherit the flag (`xla_flags`).
QUICK_CODEGEN = "--xla_backend_optimization_level=0"
if os.environ.get("OILE_TEST_OPTIMIZED") != "1" and QUICK_CODEGEN not in os.environ.get(
    "XLA_FLAGS", ""
):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {QUICK_CODEGEN}".strip()

# The tests run the `oile` command and the experiments in this process: they must not write the
# user's compilation cache (tests/test_cache.py tests it in subprocesses with their own).
os.environ["OILE_NO_COMPILE_CACHE"] = "1"

import jax  # noqa: E402 - after XLA_FLAGS, which XLA reads when its backend starts

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


def assert_same_to_rounding(actual, desired, err_msg: str = ""):
    """Two runs of one random stream compiled as different XLA programs: vmapped over another
    batch (a sweep, another number of realizations), partitioned over other devices or
    processes, or cut into other chunks. The encounters are the same by construction, so
    integer results (encounter counts) must be equal. Floating-point results agree only to
    rounding: XLA promises no particular fusion, multiply-add contraction or reduction order
    across programs, and CPUs differ (seen: a sweep's `lepton` off by 1.2e-14 in float64 on one
    CPU and exact on another). Bound: 1000 ulps of the largest magnitude, far below the O(0.01)
    that another pairing or angle makes in these runs."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape, (err_msg, actual.shape, desired.shape)
    if not np.issubdtype(desired.dtype, np.floating):
        np.testing.assert_array_equal(actual, desired, err_msg=err_msg)
        return
    scale = max(1.0, float(np.max(np.abs(desired), initial=0.0)))
    atol = 1000 * np.finfo(desired.dtype).eps * scale
    np.testing.assert_allclose(actual, desired, rtol=0, atol=atol, err_msg=err_msg)


def assert_described(path):
    """Every dataset of an oile_jax HDF5 file carries `units`, a `description` and named
    `axes`, one name per axis."""
    import h5py

    missing = []

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            attrs = {k: item.attrs.get(k) for k in ("units", "description", "axes")}
            axes = [a for a in str(attrs["axes"] or "").split(", ") if a]
            if None in attrs.values() or not attrs["description"] or len(axes) != item.ndim:
                missing.append((name, item.shape, attrs))
            elif any(a.startswith("axis ") for a in axes):
                missing.append((name, item.shape, attrs))

    with h5py.File(path) as f:
        f.visititems(visit)
    assert not missing, missing


def interrupt_after_checkpoints(monkeypatch, n: int):
    """Make `simulate_gas` stop with KeyboardInterrupt (Ctrl-C) right after writing its `n`-th
    checkpoint, i.e. after `n` chunks; returns a function that undoes it."""
    from oile_jax._gas import driver

    write_checkpoint = driver.write_checkpoint
    calls = []

    def interrupted(*args, **kwargs):
        write_checkpoint(*args, **kwargs)
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(driver, "write_checkpoint", interrupted)
    return lambda: monkeypatch.setattr(driver, "write_checkpoint", write_checkpoint)


def xla_flags(*flags: str) -> str:
    """`XLA_FLAGS` for a subprocess: this process's flags (the quick code generation above,
    unless turned off) and `flags`."""
    return " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()


_GROUPS = {
    "system": ("gamma", "mu", "B", "angles", "matter", "L", "ordering"),
    "sampling": ("key", "n_steps", "t_max", "n_realizations", "dtype"),
    "saveat": ("save_every", "save_state", "chunk_saves"),
    "checkpoint": ("checkpoint", "resume"),
    "sharding": ("devices", "shards", "exchange_every"),
}


def run_options(**values) -> dict:
    """A driver's arguments from a test's flat parameters (`gamma=`, `n_steps=`, `shards=`,
    ...), for tests that vary one parameter of a shared set: the flat names are grouped into
    the run's objects (`system`, `sampling`, `saveat`, `checkpoint`, `sharding`); any other
    name (`schedule`, `omega`, `progress`) is passed as it is. The objects are the library's,
    so a bad value is refused by the library."""
    import oile_jax as oj

    out = {}
    taken = {
        name: values.pop(name) for names in _GROUPS.values() for name in names if name in values
    }
    system = {k: taken[k] for k in _GROUPS["system"] if k in taken}
    if system:
        out["system"] = oj.System(**system)
    sampling = {k: taken[k] for k in _GROUPS["sampling"] if k in taken}
    if sampling:
        out["sampling"] = oj.Sampling(**sampling)
    names = zip(_GROUPS["saveat"], ("every", "state", "chunk"), strict=True)
    saveat = {new: taken[old] for old, new in names if old in taken}
    if saveat:
        out["saveat"] = oj.SaveAt(**saveat)
    if "checkpoint" in taken:
        out["checkpoint"] = oj.Checkpoint(taken["checkpoint"], taken.get("resume", False))
    elif "resume" in taken:
        raise TypeError("resume needs checkpoint")
    sharding = {k: taken[k] for k in _GROUPS["sharding"] if k in taken}
    if sharding:
        out["sharding"] = oj.Sharding(**sharding)
    return {**out, **values}


def with_system(**values) -> dict:
    """A model's arguments from a test's flat parameters, the physics (`gamma`, `mu`, `B`,
    `angles`, `matter`, `L`, `ordering`) gathered into `system=System(...)` (the mean fields'
    constructors), the rest passed as they are."""
    import oile_jax as oj

    physics = {k: values.pop(k) for k in _GROUPS["system"] if k in values}
    return {**values, "system": oj.System(**physics)}
