"""Histories of a coupling in time: the density `mu(t)` and the matter potential `lambda(t)`
(physics.md section 10). A profile is a traced `eqx.Module` (changing its numbers does not
recompile), called at a time `t` (scalar or array)."""

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._support.checks import check_finite, concrete


class AbstractProfile(eqx.Module):
    """A real function of time, `profile(t)`."""

    @abc.abstractmethod
    def __call__(self, t: Float[ArrayLike, "..."]) -> Array:
        """The value at times `t`."""

    @abc.abstractmethod
    def checked(self, name: str, dtype) -> "AbstractProfile":
        """This profile with its numbers in `dtype`, finite; errors name the option `name`."""

    # Whether the value never changes (then a run may treat it as a number).
    constant: eqx.AbstractClassVar[bool]


class Constant(AbstractProfile):
    """`value` at every time."""

    value: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    constant = True

    def __call__(self, t):
        return jnp.broadcast_to(self.value, jnp.shape(t)).astype(jnp.result_type(self.value))

    def checked(self, name, dtype):
        value = jnp.asarray(self.value)
        if value.ndim != 0:
            raise ValueError(f"{name} must be a number, got shape {value.shape}")
        return Constant(check_finite(value.astype(dtype), name))


class Exponential(AbstractProfile):
    r"""$`\mathrm{value}\; e^{-t/\mathrm{scale}}`$: a density that falls by $`e`$ every `scale` (a
    negative `scale` grows)."""

    value: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    scale: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    constant = False

    def __call__(self, t):
        return self.value * jnp.exp(-jnp.asarray(t, self.value.dtype) / self.scale)

    def checked(self, name, dtype):
        for part, x in (("value", self.value), ("scale", self.scale)):
            if jnp.ndim(x) != 0:
                raise ValueError(f"{name}: Exponential {part} must be a number, got {x!r}")
        scale = check_finite(self.scale.astype(dtype), f"{name} (Exponential scale)")
        value = concrete(scale)
        if value is not None and float(value) == 0:
            raise ValueError(f"{name}: Exponential scale must be nonzero (an e-folding time)")
        return Exponential(check_finite(self.value.astype(dtype), name), scale)


class Samples(AbstractProfile):
    """Values `values` at times `ts` (strictly increasing), interpolated linearly in between and
    held at the end values outside."""

    ts: Float[Array, " K"] = eqx.field(converter=jnp.asarray)
    values: Float[Array, " K"] = eqx.field(converter=jnp.asarray)
    constant = False

    def __call__(self, t):
        return jnp.interp(jnp.asarray(t, self.values.dtype), self.ts, self.values)

    def checked(self, name, dtype):
        ts, values = jnp.asarray(self.ts), jnp.asarray(self.values)
        if ts.ndim != 1 or ts.shape != values.shape or ts.shape[0] < 2:
            raise ValueError(
                f"{name}: Samples needs ts and values of the same shape (K,), K >= 2, got "
                f"{ts.shape} and {values.shape}"
            )
        ts = check_finite(ts.astype(dtype), f"{name} (Samples ts)")
        steps = concrete(jnp.diff(ts))
        if steps is not None and np.any(steps <= 0):
            raise ValueError(f"{name}: Samples ts must be strictly increasing")
        return Samples(ts, check_finite(values.astype(dtype), name))


def profile(value, name: str, dtype) -> AbstractProfile:
    """A profile from an option: a profile, or a number (a `Constant`)."""
    if not isinstance(value, AbstractProfile):
        if callable(value):
            raise ValueError(
                f"{name} must be a number or a profile (Constant, Exponential, Samples); for a "
                "function of time, sample it: Samples(ts, f(ts))"
            )
        kind = getattr(value, "dtype", None)  # arrays and tracers; else what NumPy makes of it
        if isinstance(value, (str, bytes)) or not np.issubdtype(
            kind if kind is not None else np.asarray(value).dtype, np.number
        ):
            raise ValueError(
                f"{name} must be a number or a profile (Constant, Exponential, Samples), got "
                f"{value!r}"
            )
        value = Constant(value)
    return value.checked(name, dtype)


def check_range(prof: AbstractProfile, times, name: str, lower=None, upper=None, what=""):
    """Refuse a concrete profile whose value at one of `times` leaves `[lower, upper]`; the
    error names the first such time. `what` says where `upper` comes from."""
    values = concrete(prof(times))
    if values is None:
        return
    values = np.broadcast_to(values, np.shape(times))
    bad = np.zeros(values.shape, bool)
    if lower is not None:
        bad |= values < lower
    if upper is not None:
        bad |= values > upper
    if np.any(bad):
        k = int(np.argmax(bad))
        bounds = [
            f">= {lower:g}" if lower is not None else "",
            f"<= {upper:g}{what}" if upper is not None else "",
        ]
        raise ValueError(
            f"{name} must be {' and '.join(b for b in bounds if b)} at every step; at "
            f"t = {float(np.asarray(times)[k]):g} it is {float(values[k]):g}"
        )


def check_overflow(prof: AbstractProfile, t_end, name: str, dtype) -> None:
    """Refuse a concrete profile that is not finite in `dtype` somewhere on `[0, t_end]` (a
    growing `Exponential` overflows): before a run starts, not as NaN in its results. The
    profiles here are monotone (`Exponential`) or bounded by their samples (`Samples`), so the
    ends and 1025 points between them decide."""
    end = concrete(t_end)
    if end is None or concrete(prof(0.0)) is None:
        return
    times = np.linspace(0.0, float(end), 1025).astype(dtype)
    with np.errstate(all="ignore"):
        values = np.asarray(prof(jnp.asarray(times, dtype)))
    if not np.all(np.isfinite(values)):
        k = int(np.argmax(~np.isfinite(values)))
        raise ValueError(
            f"{name} is not finite in {np.dtype(dtype).name} during the run: at t = "
            f"{float(times[k]):g} (the run ends at t = {float(end):g}) it is {values[k]}; give a "
            "profile that stays finite (a growing Exponential overflows: a larger scale or a "
            "shorter run)"
        )
