"""A persistent compilation cache for the `oile` command and the experiment scripts: JAX's
`jax_compilation_cache_dir`, in a user cache directory, so that a second process with the same
configuration reuses the first one's compiled programs instead of compiling them again.

The library never turns it on by itself (it changes JAX's global configuration); the `oile`
command does (`oile --no-compile-cache ...` to opt out), the experiment scripts do
(`--no-compile-cache`), and so can a user's script, with `use_compilation_cache()`. The
environment variable `OILE_NO_COMPILE_CACHE=1` turns it off everywhere; `OILE_COMPILE_CACHE_DIR`
chooses the directory. Its `programs/` holds the library's top-level programs compiled whole
(`_programs`), which a second process loads without tracing them. The cache is not
size-limited (JAX's limit needs the `filelock` package, which the project does not depend on):
delete the directory to clear it.
"""

import os
import sys
from pathlib import Path

ENV_OFF = "OILE_NO_COMPILE_CACHE"
ENV_DIR = "OILE_COMPILE_CACHE_DIR"
# Every program is cached: most of a run's compilation is many small programs (measured: with a
# 0.1 s threshold `oile run foreground` cached none of its 85).
MIN_COMPILE_SECONDS = 0.0


def cache_dir() -> Path:
    """`$OILE_COMPILE_CACHE_DIR`, else `$XDG_CACHE_HOME/oile_jax/jax`, else
    `~/.cache/oile_jax/jax`."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "oile_jax" / "jax"


def cache_disabled() -> bool:
    """Whether `OILE_NO_COMPILE_CACHE` is set (to anything but empty or `0`)."""
    return os.environ.get(ENV_OFF, "") not in ("", "0")


def use_compilation_cache(path: "str | os.PathLike | None" = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in `path` (default `cache_dir()`), unless
    `OILE_NO_COMPILE_CACHE` is set. Call it before the first computation. Returns the
    directory, or None when the cache stays off (opted out, or the directory cannot be made:
    then a warning on stderr, and everything runs as without a cache)."""
    if cache_disabled():
        return None
    import jax

    path = Path(path).expanduser() if path is not None else cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"oile_jax: compilation cache off ({path}: {error})", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    from .programs import store_programs_in

    store_programs_in(path)
    return path
