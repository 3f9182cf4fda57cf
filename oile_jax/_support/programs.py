"""Compiled programs kept across processes: the warm start of the compilation cache.

JAX's persistent cache (`_cache`) keeps compiled executables, but finds them by the lowered
program, so a second process still traces and lowers every program before it can look it up:
most of a command's start-up once the compiling is cached. `stored_program` is `eqx.filter_jit`
for the library's top-level programs which, while the cache is on, also stores each compiled
executable under a key computed without tracing (the function, the structure and static values
of its arguments, the shapes and dtypes of its arrays, the library's source and the versions of
JAX and its family, the device), and a later process loads it from there and runs it directly.

What cannot be stored runs as `eqx.filter_jit` does, in the same process: a program with host
callbacks (a runtime check inside a program), arguments traced by an outer transformation
(`jit`, `grad`, `vmap`), arrays on several devices, a static value whose text changes between
processes (an object shown by its address), outputs that are not all arrays.

The cache can never make a run fail. A stored file carries a checksum of its contents and is
trusted only once it has run: a file that is truncated, damaged or of another build is compiled
afresh and replaced; a loaded program's first call waits for its results, and should it fail
(an executable stored without its code, say) the call is compiled afresh, the file replaced,
and a one-line warning names the cache directory. Programs are stored only from a compile made
here (never an executable taken from JAX's persistent cache, which on the CPU serializes without
its code), and files are written whole (a temporary file, then a rename), so an interrupted
write, a full disk or two processes filling one cache leave only complete files.
"""

import functools
import hashlib
import importlib.metadata
import os
import pickle
import platform
import sys
import tempfile
from pathlib import Path

import equinox as eqx
import jax

_directory: Path | None = None
_loaded: dict[str, tuple] = {}
_unstorable: set[str] = set()
_unverified: set[str] = set()  # loaded from a file, not yet run here
_MAGIC = b"oile_jax stored program 1\n"
_FAMILY = ("jax", "jaxlib", "equinox", "diffrax", "optimistix", "lineax", "optax", "numpy")


def store_programs_in(path: "Path | None") -> None:
    """Store compiled programs in `path` (None: stop storing; programs then run as
    `eqx.filter_jit` runs them)."""
    global _directory
    _directory = None if path is None else Path(path)


@functools.cache
def _fingerprint() -> str:
    """What every stored program depends on besides its arguments: the library's source, the
    versions of Python, JAX and its family, the platform and the device kind."""
    digest = hashlib.sha256()
    root = Path(__file__).parents[1]  # the package, from _support/
    for file in sorted(root.rglob("*.py")):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file.read_bytes())
    for name in _FAMILY:
        try:
            digest.update(f"{name}={importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{name}=absent".encode())
    device = jax.devices()[0]
    digest.update(f"{sys.version}|{device.platform}|{device.device_kind}".encode())
    # Machine code for this CPU: a cache directory shared with another kind of CPU must not
    # hand it instructions it lacks.
    digest.update(f"{platform.machine()}|{_cpu_flags()}".encode())
    return digest.hexdigest()


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _describe(treedef) -> str:
    """A tree structure as text, with each node's full class name and static data."""
    data = treedef.node_data()
    if data is None:
        return "*"
    kind, aux = data
    children = ",".join(_describe(child) for child in treedef.children())
    return f"{kind.__module__}.{kind.__qualname__}[{aux!r}]({children})"


def _key(fn, leaves, treedef, static) -> str | None:
    """The stored program's name, or None when it cannot be told without tracing."""
    static_leaves, static_tree = jax.tree_util.tree_flatten(static)
    arrays = [(leaf.shape, str(leaf.dtype), getattr(leaf, "weak_type", False)) for leaf in leaves]
    text = "|".join(
        [
            f"{fn.__module__}.{fn.__qualname__}",
            _describe(treedef),
            _describe(static_tree),
            repr(static_leaves),
            repr(arrays),
            repr([jax.config.jax_enable_x64, jax.config.jax_numpy_dtype_promotion]),
            repr(jax.config.jax_default_matmul_precision),
        ]
    )
    if " at 0x" in text:  # an object shown by its address: not the same text in another process
        return None
    return hashlib.sha256((_fingerprint() + text).encode()).hexdigest()


def _single_device(leaves) -> bool:
    default = jax.devices()[0]
    if default.platform != "cpu":
        # Stored executables are checked on the CPU only (a loaded program must find every
        # kernel it calls bound, which only the CPU's LAPACK needed help with); elsewhere JAX's
        # persistent cache alone serves.
        return False
    for leaf in leaves:
        if isinstance(leaf, jax.core.Tracer):
            return False
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None and sharding.device_set != {default}:
            return False
    return True


class _NotStorable(Exception):
    pass


def _compile(fn, leaves, treedef, static):
    """Compile `fn` as a program of its array leaves; returns `(compiled, out_treedef)`."""
    shapes = []

    def flat(*leaves):
        args, kwargs = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
        out_leaves, out_tree = jax.tree_util.tree_flatten(fn(*args, **kwargs))
        if not all(isinstance(leaf, jax.Array) for leaf in out_leaves):
            raise _NotStorable
        shapes.append(out_tree)
        return out_leaves

    lowered = jax.jit(flat).lower(*leaves)
    return _compile_afresh(lowered), shapes[0]


def _compile_afresh(lowered):
    """`lowered.compile()` by XLA itself, never an executable read from JAX's persistent cache:
    one read from there (on the CPU) serializes without its code, and the process that loads it
    fails ("Function ... not found"). JAX decides once per process whether it uses its cache,
    so turning the option off is not enough: its state is reset around the compile."""
    from jax.experimental.compilation_cache import compilation_cache

    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    try:
        return lowered.compile()
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
        compilation_cache.reset_cache()


def _save(path: Path, compiled, out_tree) -> None:
    from jax.experimental import serialize_executable

    payload, in_tree, flat_out_tree = serialize_executable.serialize(compiled)
    # The output's structure travels as an instance with 0 for each array (its classes are
    # pickled by name; a tree structure itself does not survive pickling).
    skeleton = jax.tree_util.tree_unflatten(out_tree, [0] * out_tree.num_leaves)
    body = pickle.dumps((payload, in_tree, flat_out_tree, skeleton))
    data = _MAGIC + hashlib.sha256(body).digest() + body
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _load(path: Path):
    from jax._src.lax import linalg
    from jax.experimental import serialize_executable

    # JAX binds its LAPACK kernels (linear algebra on the CPU) while lowering a program that
    # uses them; a program loaded without lowering needs them bound first, or it crashes.
    linalg.initialize_lapack()
    data = path.read_bytes()
    head, digest, body = (
        data[: len(_MAGIC)],
        data[len(_MAGIC) : len(_MAGIC) + 32],
        data[len(_MAGIC) + 32 :],
    )
    if head != _MAGIC or hashlib.sha256(body).digest() != digest:
        raise ValueError("not a complete stored program (truncated, damaged or another format)")
    payload, in_tree, flat_out_tree, skeleton = pickle.loads(body)
    compiled = serialize_executable.deserialize_and_load(payload, in_tree, flat_out_tree)
    return compiled, jax.tree_util.tree_structure(skeleton)


def _parts(args, kwargs):
    """`(leaves, treedef, static)`: the arrays of a call, their structure, the rest."""
    dynamic, static = eqx.partition((args, kwargs), eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(dynamic)
    return leaves, treedef, static


def _program(fn, args, kwargs):
    """`(program, leaves, key)`: the stored program for this call, or None (then the caller
    runs `filter_jit`), the call's array leaves and the program's key."""
    leaves, treedef, static = _parts(args, kwargs)
    if not _single_device(leaves):
        return None, leaves, None
    key = _key(fn, leaves, treedef, static)
    if key is None or key in _unstorable:
        return None, leaves, key
    if key in _loaded:
        return _loaded[key], leaves, key
    path = _directory / "programs" / f"{key}.pkl"
    program = None
    if path.exists():
        try:
            program = _load(path)
            _unverified.add(key)
        except Exception:  # truncated, damaged, or from another build: compile it afresh
            program = None
    if program is None:
        program = _compile_and_store(fn, leaves, treedef, static, key, path)
        if program is None:
            return None, leaves, key
    _loaded[key] = program
    return program, leaves, key


def _compile_and_store(fn, leaves, treedef, static, key, path):
    """A fresh compile of the call, stored in `path` (when it can be), or None when the program
    cannot be stored (then the caller runs `filter_jit`)."""
    try:
        program = _compile(fn, leaves, treedef, static)
    except _NotStorable:
        _unstorable.add(key)
        return None
    try:
        _save(path, *program)
    except Exception:
        # A program with host callbacks cannot be serialized (it still runs here); a full
        # disk or a read-only cache directory is no reason to fail a run.
        pass
    return program


def _warn(path: Path, error: BaseException) -> None:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    print(
        f"oile_jax: a stored program in the compilation cache {path.parent.parent} failed "
        f"({first}); compiled afresh and replaced",
        file=sys.stderr,
    )


def stored_program(fn):
    """`eqx.filter_jit(fn)`, whose compiled programs are also stored while the cache is on."""
    jitted = eqx.filter_jit(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _directory is None:
            return jitted(*args, **kwargs)
        program, leaves, key = _program(fn, args, kwargs)
        if program is None:
            return jitted(*args, **kwargs)
        compiled, out_tree = program
        try:
            out = compiled(*leaves)
            if key in _unverified:
                # A loaded program's errors surface when its results are read: its first call
                # waits for them, so that a failure falls back here, not in the caller.
                jax.block_until_ready(out)
                _unverified.discard(key)
        except Exception as error:
            # A stored program that fails is compiled afresh and its file replaced; should that
            # fail too, the same call under `filter_jit` decides: it runs, or raises its own
            # error.
            _loaded.pop(key, None)
            path = _directory / "programs" / f"{key}.pkl"
            if key in _unverified:
                _unverified.discard(key)
                _warn(path, error)
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass
                leaves, treedef, static = _parts(args, kwargs)
                program = _compile_and_store(fn, leaves, treedef, static, key, path)
                if program is not None:
                    _loaded[key] = program
                    return jax.tree_util.tree_unflatten(program[1], program[0](*leaves))
            _unstorable.add(key)
            return jitted(*args, **kwargs)
        return jax.tree_util.tree_unflatten(out_tree, out)

    return call
