"""Closed forms for a foreground neutrino in a uniform, isotropic background (physics.md section 5).

Averaging the encounter over isotropic `x ~ U[0, 2]` with encounter rate `mu / gamma`:

    dP/dt = (omega B + mu_R P_b) x P - Gamma (P - P_b)
    mu_R  = mu sin^2(2 gamma) / (4 gamma^2)
    Gamma = (mu / gamma) (1/2 - sin(4 gamma) / (8 gamma))

a linear ODE, solved here exactly by the exponential of its 4x4 affine generator. These are the
closed forms of the `Swap` encounter (`_physics/encounter.py`, which computes its averages).
"""

import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm
from jaxtyping import Array, ArrayLike, Float

from .._physics.encounter import Swap
from .._physics.flavours import (
    dimension,
    flavours_of,
    pmns_vacuum,
    structure_constants,
    turn_matrices,
)
from .._physics.states import (
    check_state,
)
from .._sampling.schedule import checked_dt
from .._support.checks import (
    as_dtype,
    check_finite,
    check_if_concrete,
    check_nonnegative,
    check_positive,
    check_scalar,
    check_unit,
    check_vector,
)
from .._support.programs import stored_program


def encounter_averages(gamma: Float[ArrayLike, "..."]) -> tuple[Array, Array, Array]:
    r"""Per-encounter averages over isotropic $`x \sim U[0, 2]`$, $`c = \gamma x`$:
    $`(\langle\cos^2 c\rangle, \langle\sin^2 c\rangle, \langle\sin c \cos c\rangle)`$,

    $$`\langle\cos^2 c\rangle = \frac12 + \frac{\sin 4\gamma}{8\gamma}, \qquad
    \langle\sin c \cos c\rangle = \frac{\sin^2 2\gamma}{4\gamma}`$$
    """
    check_if_concrete(gamma, "gamma", nonnegative=True)
    gamma = jnp.asarray(gamma, dtype=jnp.result_type(gamma, float))
    return Swap().isotropic_averages(gamma)


def master_rates(
    gamma: Float[ArrayLike, "..."], mu: Float[ArrayLike, "..."] = 1.0
) -> tuple[Array, Array]:
    r"""$`(\mu_R, \Gamma)`$ of the foreground master equation (physics.md section 5),

    $$`\mu_R = \mu \frac{\sin^2 2\gamma}{4\gamma^2}, \qquad
    \Gamma = \frac{\mu}{\gamma} \Big(\frac12 - \frac{\sin 4\gamma}{8\gamma}\Big)`$$

    $`\gamma = 0`$ gives $`(\mu, 0)`$.

    Both are the encounter rate `mu / gamma` times a per-encounter average.
    """
    check_if_concrete(gamma, "gamma", nonnegative=True)
    check_if_concrete(mu, "mu", nonnegative=True)
    gamma = jnp.asarray(gamma, dtype=jnp.result_type(gamma, float))
    mu = jnp.asarray(mu, dtype=gamma.dtype)
    return Swap().isotropic_rates(gamma, mu)


def _skew(h):
    zero = jnp.zeros_like(h[0])
    return jnp.stack(
        [
            jnp.stack([zero, -h[2], h[1]]),
            jnp.stack([h[2], zero, -h[0]]),
            jnp.stack([-h[1], h[0], zero]),
        ]
    )


def _star_matrix(h, n: int):
    """The matrix of `P -> h * P` (`h x P` for two flavours; physics.md section 11)."""
    if n == 2:
        return _skew(h)
    f = jnp.asarray(structure_constants(n)[0], h.dtype)
    return jnp.einsum("a,abc->cb", h, f)


def _affine(linear, offset):
    dtype, D = linear.dtype, linear.shape[-1]
    return (
        jnp.zeros((D + 1, D + 1), dtype=dtype)
        .at[:D, :D]
        .set(linear)
        .at[:D, D]
        .set(offset)
        .at[D, D]
        .set(1)
    )


def _matrix_power(M, n):
    """`M**n` for a traced non-negative integer `n`, by binary exponentiation."""
    bits = jnp.iinfo(n.dtype).bits - 1

    def body(carry, bit):
        result, square = carry
        result = jnp.where((n >> bit) & 1, result @ square, result)
        return (result, square @ square), None

    (result, _), _ = jax.lax.scan(body, (jnp.eye(M.shape[-1], dtype=M.dtype), M), jnp.arange(bits))
    return result


def foreground_mean(
    P0: Float[ArrayLike, "... D"],
    P_b: Float[ArrayLike, " D"],
    t: Float[ArrayLike, " T"],
    *,
    gamma: Float[ArrayLike, ""],
    mu: Float[ArrayLike, ""] = 1.0,
    omega: Float[ArrayLike, ""] = 0.0,
    B: "Float[ArrayLike, ' D'] | None" = None,
    dt: Float[ArrayLike, ""] | None = None,
) -> Float[Array, "T ... D"]:
    r"""Ensemble-mean Bloch vector of a foreground neutrino at times `t` (physics.md section 5),
    isotropic angles.

    With `dt=None` (default): the exact solution of the master equation
    $`d\mathbf{P}/dt = (\omega \mathbf{B} + \mu_R \mathbf{P}_b) \times \mathbf{P} - \Gamma
    (\mathbf{P} - \mathbf{P}_b)`$, including $`\omega \ne 0`$.
    $`\gamma = 0`$ is the mean field: coherent precession about
    $`\omega \mathbf{B} + \mu \mathbf{P}_b`$ with $`|\mathbf{P}|`$ conserved.

    With `dt` given: the exact ensemble mean of the stochastic schedule with that time step
    (`Stochastic(dt)`: per step, vacuum rotation by `omega dt / 2`, an encounter with probability
    `mu dt / gamma`, vacuum rotation by `omega dt / 2`), at the step `round(t / dt)`. It differs
    from the master equation by `O(mu^2 t dt)`, the time discretization of the schedule.

    `B` is the unit vacuum direction in the basis `P0`, `P_b` are written in (default: mass basis,
    `(0, 0, -1)`). Three flavours (`P0`, `P_b` of 8 components, physics.md section 11): the same
    equations with `h * P` for `h x P` and the vacuum vector `B` of `pmns_vacuum` (default
    `pmns_vacuum("normal", "mass")`); the averages of an encounter are those of two flavours.
    Times in units of `1/mu` when `mu = 1`. Returns shape `t.shape + P0.shape`.
    """
    dtype = jnp.result_type(float)
    n = flavours_of(P0, "P0")
    D = dimension(n)
    P0 = check_state(check_vector(P0, "P0", dtype, size=D), "P0")
    P_b = check_state(check_vector(P_b, "P_b", dtype, size=D), "P_b")
    if P_b.ndim != 1:
        raise ValueError(f"P_b must have shape ({D},), got {P_b.shape}")
    if B is None:
        B = (0.0, 0.0, -1.0) if n == 2 else pmns_vacuum("normal", "mass")
    B = check_vector(B, "B", dtype, size=D)
    B = check_unit(B, "B") if n == 2 else check_finite(B, "B")
    gamma = check_nonnegative(check_scalar(gamma, "gamma", dtype), "gamma")
    mu = check_positive(check_scalar(mu, "mu", dtype), "mu")
    omega = check_finite(check_scalar(omega, "omega", dtype), "omega")
    t = check_finite(as_dtype(jnp.asarray(t), dtype), "t")
    if dt is not None:
        dt = check_positive(check_scalar(dt, "dt", dtype), "dt")
        gamma = check_positive(gamma, "gamma")
        dt = checked_dt(dt, gamma, mu)
    return _foreground_mean(P0, P_b, t, gamma, mu, omega, B, dt)


@stored_program
def _foreground_mean(P0, P_b, t, gamma, mu, omega, B, dt):
    """`foreground_mean` on checked arrays: one program (not one per operation)."""
    dtype, D = P0.dtype, P0.shape[-1]
    n = flavours_of(P0, "P0")
    if dt is None:
        mu_R, Gamma = master_rates(gamma, mu)
        A = _star_matrix(omega * B + mu_R * P_b, n) - Gamma * jnp.eye(D, dtype=dtype)
        generator = _affine(A, Gamma * P_b).at[D, D].set(0)
        propagators = jax.vmap(lambda s: expm(s * generator))(t.reshape(-1))
    else:
        p = mu * dt / gamma
        _, sin2, sincos = encounter_averages(gamma)
        meet = _affine(
            (1 - p * sin2) * jnp.eye(D, dtype=dtype) + p * sincos * _star_matrix(P_b, n),
            p * sin2 * P_b,
        )
        half = _affine(turn_matrices(B, omega * dt / 2), jnp.zeros(D, dtype=dtype))
        step = half @ meet @ half
        n_steps = jnp.round(t.reshape(-1) / dt).astype(
            jnp.int64 if dtype == jnp.float64 else jnp.int32
        )
        propagators = jax.vmap(lambda n: _matrix_power(step, n))(n_steps)
    affine = jnp.concatenate([P0, jnp.ones(P0.shape[:-1] + (1,), dtype=dtype)], axis=-1)
    P = jnp.einsum("tij,...j->t...i", propagators[:, :D, :], affine)
    return P.reshape(t.shape + P0.shape)
