"""Validation of the options every simulation driver takes: schedule, coupling, vacuum
direction, run length, save interval, ensemble size and key."""

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_positive, check_scalar, check_unit, check_vector, concrete
from ._schedule import AbstractSchedule, Stochastic, meet_probability


def realization_keys(key, n_realizations: int):
    """Realization `r` uses `fold_in(key, r)`: independent of how many realizations run."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n_realizations))


def check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_key(key):
    """A typed PRNG key; legacy `PRNGKey(seed)` data is wrapped (same threefry bits)."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got shape {key.shape}")
        return key
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise ValueError(
            f"key must be a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
            f"got dtype {key.dtype} and shape {key.shape}"
        )
    return jax.random.wrap_key_data(key)


def run_length(schedule, gamma, mu, n_steps, t_max, save_every) -> int:
    """Steps of a run given `n_steps`, or `t_max` rounded to a multiple of `save_every` steps."""
    if (n_steps is None) == (t_max is None):
        raise ValueError("give exactly one of n_steps and t_max")
    if n_steps is not None:
        n_steps = check_count(n_steps, "n_steps")
    else:
        tau = concrete(schedule.step_length(gamma, mu))
        t_max_value = concrete(t_max)
        if tau is None or t_max_value is None:
            raise ValueError(
                "t_max needs concrete gamma, mu, dt and t_max; under jit or grad pass n_steps"
            )
        if not np.isfinite(t_max_value) or t_max_value <= 0:
            raise ValueError(f"t_max must be > 0, got {t_max!r}")
        n_steps = save_every * max(1, round(float(t_max_value) / (float(tau) * save_every)))
    if n_steps % save_every:
        raise ValueError(f"n_steps={n_steps} must be a multiple of save_every={save_every}")
    return n_steps


def check_run(*, schedule, gamma, mu, B, n_steps, t_max, save_every, n_realizations, key, dtype):
    """Validated `(schedule, gamma, mu, B, n_steps, save_every, n_realizations, key)`."""
    if not isinstance(schedule, AbstractSchedule):
        raise ValueError(
            f"schedule must be Stochastic(dt=...) or Deterministic(), got {schedule!r}"
        )
    gamma = check_positive(check_scalar(gamma, "gamma", dtype), "gamma")
    mu = check_positive(check_scalar(mu, "mu", dtype), "mu")
    B = check_unit(check_vector(B, "B", dtype), "B")
    if B.ndim != 1:
        raise ValueError(f"B must have shape (3,), got {B.shape}")
    if isinstance(schedule, Stochastic):
        schedule = Stochastic(dt=check_scalar(schedule.dt, "dt", dtype))
        meet_probability(schedule, gamma, mu)
    save_every = check_count(save_every, "save_every")
    n_realizations = check_count(n_realizations, "n_realizations")
    n_steps = run_length(schedule, gamma, mu, n_steps, t_max, save_every)
    return schedule, gamma, mu, B, n_steps, save_every, n_realizations, check_key(key)
