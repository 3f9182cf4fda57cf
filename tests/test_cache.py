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
