"""The persistent compilation cache of the `oile` command (`_cache.py`): written where
`OILE_COMPILE_CACHE_DIR` says, read back by a second process, and off with
`--no-compile-cache` or `OILE_NO_COMPILE_CACHE=1`. Its speed-up is measured by
`experiments/benchmark_startup.py`, not here."""

import os
import subprocess
import sys

import pytest

from .conftest import xla_flags

RUN = ["run", "foreground", "--set", "run.t_max=2.0", "--set", "run.n_saves=3", "--force"]


def oile(tmp_path, cache, *args, env=None):
    environment = {**os.environ, "OILE_COMPILE_CACHE_DIR": str(cache), "XLA_FLAGS": xla_flags()}
    environment.pop("OILE_NO_COMPILE_CACHE", None)
    environment.update(env or {})
    code = "import sys; from oile_jax._cli import main; sys.exit(main(sys.argv[1:]))"
    out = tmp_path / "fg.h5"
    result = subprocess.run(
        [sys.executable, "-c", code, *args, *RUN, "--out", str(out)],
        env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


@pytest.mark.long  # subprocesses, 12 s: make test-long, in CI
def test_the_cache_is_written_and_reused(tmp_path):
    cache = tmp_path / "cache"
    first = oile(tmp_path, cache)
    assert first, "the first run wrote no compiled programs"
    # A second process with the same configuration finds every program: nothing new is written.
    assert oile(tmp_path, cache) == first


@pytest.mark.long  # subprocesses, 14 s: make test-long, in CI
def test_the_cache_can_be_turned_off(tmp_path):
    assert oile(tmp_path, tmp_path / "flag", "--no-compile-cache") == []
    assert not (tmp_path / "flag").exists()
    assert oile(tmp_path, tmp_path / "env", env={"OILE_NO_COMPILE_CACHE": "1"}) == []


# Stored programs (`_programs.py`), in this process.


def _store(monkeypatch, path):
    from oile_jax import _programs

    monkeypatch.setattr(_programs, "_directory", path)
    monkeypatch.setattr(_programs, "_loaded", {})
    monkeypatch.setattr(_programs, "_unstorable", set())
    return _programs


def _foreground(**options):
    import jax
    import jax.numpy as jnp

    import oile_jax as oj

    return oj.simulate_foreground(
        jnp.asarray([0.0, 0.0, 1.0]),
        jnp.asarray([0.6, 0.0, 0.8]),
        gamma=0.3,
        schedule=oj.Stochastic(dt=0.1),
        key=jax.random.key(3),
        n_steps=40,
        n_realizations=8,
        **options,
    ).mean


def test_stored_programs_are_written_loaded_and_agree(tmp_path, monkeypatch):
    import numpy as np

    reference = np.asarray(_foreground())  # eqx.filter_jit, nothing stored
    programs = _store(monkeypatch, tmp_path)
    stored = np.asarray(_foreground())
    files = sorted((tmp_path / "programs").iterdir())
    assert len(files) == 1, files
    # Another compile of the same computation: equal up to rounding, not bit for bit (XLA does
    # not promise one program's fusion choices to another).
    np.testing.assert_allclose(stored, reference, rtol=1e-6, atol=1e-7)
    # As a new process does: read from the file, never compiled.
    monkeypatch.setattr(programs, "_loaded", {})
    compile_ = programs._compile
    monkeypatch.setattr(programs, "_compile", lambda *a: pytest.fail("compiled again"))
    loaded = np.asarray(_foreground())
    # The same executable on the same inputs: identical by construction.
    np.testing.assert_array_equal(loaded, stored)
    # Other shapes or static options are other programs.
    monkeypatch.setattr(programs, "_compile", compile_)
    _foreground(save_every=2)
    assert len(list((tmp_path / "programs").iterdir())) == 2


def test_unreadable_stored_programs_are_compiled_again(tmp_path, monkeypatch):
    import numpy as np

    programs = _store(monkeypatch, tmp_path)
    first = np.asarray(_foreground())
    (path,) = (tmp_path / "programs").iterdir()
    path.write_bytes(b"not a program")
    monkeypatch.setattr(programs, "_loaded", {})
    np.testing.assert_array_equal(np.asarray(_foreground()), first)
    assert path.read_bytes() != b"not a program"  # replaced, whole


def test_what_cannot_be_stored_runs_as_filter_jit(tmp_path, monkeypatch):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    programs = _store(monkeypatch, tmp_path)

    def checked(x):  # a runtime check: a host callback, which cannot be serialized
        return eqx.error_if(x, x < 0, "x must be >= 0") * 2

    stored = programs.stored_program(checked)
    assert float(stored(jnp.asarray(1.5))) == 3.0
    with pytest.raises(eqx.EquinoxRuntimeError, match="x must be >= 0"):
        stored(jnp.asarray(-1.0))
    # A static value shown by its address, and arguments traced by an outer jit: not stored.
    scaled = programs.stored_program(lambda f, x: f(x))
    assert float(scaled(lambda x: 3 * x, jnp.asarray(2.0))) == 6.0
    assert float(jax.jit(lambda x: stored(x))(jnp.asarray(2.0))) == 4.0
    assert not (tmp_path / "programs").exists() or not any((tmp_path / "programs").iterdir())
