"""Input validation shared by the public entry points.

Shape, dtype and option mistakes raise `ValueError` at trace time. Value conditions
(|P| > 1, NaN, negative gamma, ...) raise `ValueError` when the value is concrete, and go
through `eqx.error_if` when it is traced (under `jit`, `grad`, `vmap`), so a user never sees
a bare XLA error for a mistake of theirs.

Concrete values are checked and converted in NumPy on the host: an eager `jnp` operation is
a program of its own, and each costs a fresh process a trace, a lowering and a compile (or a
compilation-cache lookup), about 10 ms apiece on a CPU.
"""

import contextlib
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


class OptionError(ValueError):
    """A `ValueError` about one option of an object, `option` its name (the field it sets), so
    that a caller that wrote the option under another name (a run file's key) can say so."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


@contextlib.contextmanager
def about(option: str):
    """A `ValueError` raised inside the block is an `OptionError` about `option`."""
    try:
        yield
    except OptionError:
        raise
    except ValueError as error:
        raise OptionError(option, str(error)) from None


def concrete(x) -> np.ndarray | None:
    """The value of `x` as a NumPy array, or None if `x` is (or contains) a tracer."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def bloch_tolerance(dtype) -> float:
    """Slack allowed above |P| = 1 for rounding in `dtype`."""
    return 16 * float(jnp.finfo(dtype).eps)


def check_option(value: str, name: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"{name}={value!r} is not a known option; allowed: {', '.join(map(repr, allowed))}"
        )
    return value


def as_dtype(x, dtype):
    """`x` (an array) in `dtype`: converted on the host when concrete, else traced."""
    if x.dtype == dtype:
        return x
    value = concrete(x)
    return x.astype(dtype) if value is None else jnp.asarray(value.astype(dtype))


def check_vector(x, name: str, dtype=None, *, size: int = 3, what: str = ""):
    """`x` as a real array (of `dtype`, if given) whose last axis has length `size`; `what`
    names the vectors in the message ("Bloch vectors (two flavours)")."""
    x = as_array(x, name, f"an array of real vectors of {size} components")
    if x.ndim == 0 or x.shape[-1] != size:
        shape = f"be {what} of shape" if what else "have shape"
        raise ValueError(f"{name} must {shape} (..., {size}), got shape {x.shape}")
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise ValueError(f"{name} must be real, got dtype {x.dtype}")
    return x if dtype is None else as_dtype(x, jnp.dtype(dtype))


def as_array(x, name: str, what: str = "a number"):
    """`jnp.asarray(x)`, with input JAX cannot take (text, a function, ragged lists) refused
    naming `name` instead of JAX's or NumPy's own error."""
    if isinstance(x, (str, bytes)) or (callable(x) and not isinstance(x, jax.Array)):
        raise ValueError(f"{name} must be {what}, got {x!r}")
    try:
        return jnp.asarray(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, got {x!r}") from None


def check_scalar(x, name: str, dtype):
    x = as_array(x, name)
    if x.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {x.shape}")
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise ValueError(f"{name} must be real, got dtype {x.dtype}")
    return as_dtype(x, jnp.dtype(dtype))


def fail_if(x, bad, message: str):
    """Raise now if `bad` is concrete and true; otherwise attach a runtime check to `x`."""
    value = concrete(bad)
    if value is not None:
        if np.any(value):
            raise ValueError(message)
        return x
    return eqx.error_if(x, bad, message)


def check_instance(value, kind: type, name: str):
    """`value`, refused unless it is a `kind` (a run option's object, the physical system)."""
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a {kind.__name__}(...), got {value!r}")
    return value


def check_dtype(dtype, name: str = "dtype"):
    """A float dtype the simulators run in: float32, or float64 with x64 enabled (default: JAX's
    default float)."""
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"{name} must be float32 or float64, got {dtype}")
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            f"{name}=float64 needs jax.config.update('jax_enable_x64', True) first (JAX "
            "otherwise computes in float32)"
        )
    return dtype


def check_physical_if_concrete(P, name: str):
    """Bloch vectors `P` must be finite with |P| <= 1 (up to rounding), checked only when the
    value is concrete: no runtime check is attached to traced values (hot loops call this)."""
    value = concrete(P)
    if value is None or value.size == 0:
        return
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} contains NaN or inf")
    norm = np.linalg.norm(value, axis=-1)
    if np.any(norm > 1 + bloch_tolerance(value.dtype)):
        raise ValueError(
            f"{name} is unphysical: |P| must be <= 1 (largest |P| = {float(norm.max()):.9g})"
        )


def refuse(x, bad, message: str):
    """`x`, refused where `bad(xp, x)` (with `xp` NumPy for a concrete `x`, else `jax.numpy`) is
    true anywhere: now on the host, or by a runtime check attached to a traced `x`."""
    value = concrete(x)
    if value is None:
        return eqx.error_if(x, jnp.any(bad(jnp, x)), message)
    if np.any(bad(np, value)):
        raise ValueError(message)
    return x


def check_finite(x, name: str):
    return refuse(x, lambda xp, x: ~xp.isfinite(x), f"{name} contains NaN or inf")


def check_bloch(P, name: str):
    """Finite Bloch vectors with |P| <= 1 (up to rounding)."""
    P = check_finite(P, name)
    tol = bloch_tolerance(P.dtype)
    value = concrete(P)
    worst = float(np.linalg.norm(value, axis=-1).max()) if value is not None and P.size else None
    shown = f" (largest |P| = {worst:.9g})" if worst is not None else ""
    return refuse(
        P,
        lambda xp, P: xp.linalg.norm(P, axis=-1) > 1 + tol,
        f"{name} is unphysical: |P| must be <= 1{shown}",
    )


def check_nonnegative(x, name: str):
    x = check_finite(x, name)
    return refuse(x, lambda xp, x: x < 0, f"{name} must be >= 0, got {_show(x)}")


def check_positive(x, name: str):
    x = check_finite(x, name)
    return refuse(x, lambda xp, x: x <= 0, f"{name} must be > 0, got {_show(x)}")


def check_unit(B, name: str):
    """A unit vector (the vacuum direction)."""
    B = check_finite(B, name)
    tol = 1e3 * float(jnp.finfo(B.dtype).eps)
    return refuse(
        B,
        lambda xp, B: xp.abs(xp.linalg.norm(B, axis=-1) - 1) > tol,
        f"{name} must be a unit vector, got {_show(B)}",
    )


def _show(x) -> str:
    value = concrete(x)
    return "a traced value" if value is None else np.array2string(value, precision=6)


def check_if_concrete(x, name: str, *, nonnegative: bool = False):
    """Refuse a concrete `x` holding NaN or inf (or, with `nonnegative`, a negative value),
    naming `name`; a traced `x` is left as it is (no runtime check: these are the small
    functions used inside the library's own programs)."""
    value = concrete(x)
    if value is None:
        return x
    value = np.asarray(value)
    if not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
        raise ValueError(f"{name} must be real numbers, got {x!r}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite, got NaN or inf")
    if nonnegative and np.any(value < 0):
        raise ValueError(f"{name} must be >= 0, got {x!r}")
    return x
