"""The persistent compilation cache of the `oile` command (`_support/cache.py`): written where
`OILE_COMPILE_CACHE_DIR` says, read back by a second process, and off with
`--no-compile-cache` or `OILE_NO_COMPILE_CACHE=1`. Its speed-up is measured by
`experiments/benchmark_startup.py`, not here."""

import os
import subprocess
import sys

import pytest

from .conftest import run_options, xla_flags

RUN = ["run", "foreground", "--set", "run.t_max=2.0", "--set", "run.n_saves=3", "--force"]


def _command(tmp_path, cache, *args, env=None, prelude="", out="fg.h5"):
    environment = {**os.environ, "OILE_COMPILE_CACHE_DIR": str(cache), "XLA_FLAGS": xla_flags()}
    environment.pop("OILE_NO_COMPILE_CACHE", None)
    environment.update(env or {})
    main = "import sys; from oile_jax._app.cli import main; sys.exit(main(sys.argv[1:]))"
    code = f"{prelude}\n{main}"
    return [sys.executable, "-c", code, *args, *RUN, "--out", str(tmp_path / out)], environment


def oile(tmp_path, cache, *args, env=None, prelude="", out="fg.h5"):
    command, environment = _command(tmp_path, cache, *args, env=env, prelude=prelude, out=out)
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


def _final_mean(path):
    import h5py
    import numpy as np

    with h5py.File(path, "r") as file:
        return np.asarray(file["mean"][-1])


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


# Stored programs (`_support/programs.py`), in this process.


def _store(monkeypatch, path):
    from oile_jax._support import programs as _programs

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
        **run_options(
            gamma=0.3,
            schedule=oj.Stochastic(dt=0.1),
            key=jax.random.key(3),
            n_steps=40,
            n_realizations=8,
            **options,
        ),
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


# Faults of the cache, each in fresh processes: none can make a run fail or change its result.


def _programs_of(cache):
    return sorted((cache / "programs").iterdir())


@pytest.mark.long  # subprocesses, about 40 s: make test-long, in CI
def test_damaged_or_deleted_stored_programs_never_fail_a_run(tmp_path):
    import numpy as np

    cache = tmp_path / "cache"
    oile(tmp_path, cache, out="ref.h5")
    reference = _final_mean(tmp_path / "ref.h5")
    # Deleted: JAX's own cache still holds the executables, which must not be stored (they
    # serialize without their code); then two more runs, the second loading what was stored.
    for program in _programs_of(cache):
        program.unlink()
    oile(tmp_path, cache, out="a.h5")
    oile(tmp_path, cache, out="b.h5")
    np.testing.assert_array_equal(_final_mean(tmp_path / "b.h5"), reference)
    # Truncated, then garbage: each run compiles afresh and replaces the file.
    for damage in (lambda data: data[: len(data) // 2], lambda data: b"\x00garbage" * 100):
        for program in _programs_of(cache):
            program.write_bytes(damage(program.read_bytes()))
        damaged = {p: p.read_bytes() for p in _programs_of(cache)}
        oile(tmp_path, cache, out="c.h5")
        np.testing.assert_allclose(_final_mean(tmp_path / "c.h5"), reference, rtol=1e-6)
        assert all(p.read_bytes() != data for p, data in damaged.items())


@pytest.mark.long  # subprocesses, about 20 s: make test-long, in CI
def test_a_stored_program_without_its_code_falls_back_with_a_warning(tmp_path):
    import numpy as np

    cache = tmp_path / "cache"
    # As the library did before: compile through JAX's persistent cache (which then holds the
    # programs) and, once the stored files are gone, store the executables that cache hands
    # back, which on the CPU serialize without their code.
    careless = (
        "import oile_jax._support.programs as p; "
        "p._compile_afresh = lambda lowered: lowered.compile()"
    )
    oile(tmp_path, cache, prelude=careless, out="ref.h5")
    for program in _programs_of(cache):
        program.unlink()
    oile(tmp_path, cache, prelude=careless, out="a.h5")
    command, environment = _command(tmp_path, cache, out="b.h5")
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "stored program" in line]
    assert warnings and str(cache) in warnings[0], result.stderr
    np.testing.assert_allclose(
        _final_mean(tmp_path / "b.h5"), _final_mean(tmp_path / "ref.h5"), rtol=1e-6
    )
    # Replaced: the next process loads them without a word.
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "stored program" not in result.stderr, result.stderr


@pytest.mark.long  # subprocesses, about 15 s: make test-long, in CI
def test_a_full_disk_never_fails_a_run_nor_leaves_partial_files(tmp_path):
    # Files larger than 64 KiB cannot be written (RLIMIT_FSIZE: the write fails as on a full
    # disk): stored programs and JAX's cache entries fail to be written, the run goes on.
    cache = tmp_path / "cache"
    full = (
        "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))"
    )
    oile(tmp_path, cache, prelude=full, out="a.h5")
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".partial-")], files
    # What was written is whole: a later run without the limit runs and agrees.
    oile(tmp_path, cache, out="b.h5")


@pytest.mark.long  # subprocesses, about 20 s: make test-long, in CI
def test_two_processes_filling_one_cache(tmp_path):
    import numpy as np

    cache = tmp_path / "cache"
    started = []
    for name in ("a.h5", "b.h5"):
        command, environment = _command(tmp_path, cache, out=name)
        started.append(subprocess.Popen(command, env=environment, stderr=subprocess.PIPE))
    for process in started:
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    reference = _final_mean(tmp_path / "a.h5")
    np.testing.assert_allclose(_final_mean(tmp_path / "b.h5"), reference, rtol=1e-6)
    for _ in range(2):  # every stored file loads and runs
        command, environment = _command(tmp_path, cache, out="c.h5")
        result = subprocess.run(command, env=environment, capture_output=True, text=True)
        assert result.returncode == 0 and "stored program" not in result.stderr, result.stderr
    np.testing.assert_allclose(_final_mean(tmp_path / "c.h5"), reference, rtol=1e-6)


def test_a_loaded_program_that_fails_is_compiled_afresh(tmp_path, monkeypatch, capsys):
    import numpy as np

    programs = _store(monkeypatch, tmp_path)
    monkeypatch.setattr(programs, "_unverified", set())
    first = np.asarray(_foreground())
    (path,) = (tmp_path / "programs").iterdir()
    before = path.stat().st_mtime_ns
    monkeypatch.setattr(programs, "_loaded", {})
    load = programs._load

    def broken(path):
        compiled, tree = load(path)

        def run(*leaves):
            raise RuntimeError("NOT_FOUND: Function fusion not found")

        return run, tree

    monkeypatch.setattr(programs, "_load", broken)
    np.testing.assert_allclose(np.asarray(_foreground()), first, rtol=1e-6)
    assert "compiled afresh and replaced" in capsys.readouterr().err
    assert path.stat().st_mtime_ns != before  # replaced
