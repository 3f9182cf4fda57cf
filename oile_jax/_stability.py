"""Linear stability of mean-field states by automatic differentiation (physics.md section 12).

The linearization of a mean-field vector field `F` (`ForegroundField`, `GroupField`,
`MultiAngleField`, with or without a collision term) about a state that is stationary, or
precesses uniformly about an axis `a` at a frequency `Omega` (then stationary in the co-rotating
frame, `F'(P) = F(P) - Omega a * P`), is the Jacobian `J = dF'/dP` (`jax.jacfwd`). A perturbation
`exp(lambda t) v` grows at the rate `Re lambda` and turns at `Im lambda`. Without a collision
term the mean field moves each particle only on the orbit of its state (`|P_i|`, and for three
flavours every eigenvalue of `rho_i`, are conserved), so the linearization is taken on the
tangent spaces of those orbits, the ranges of `X -> X * P_i`: the directions that would change a
conserved length would only add zero eigenvalues.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float

from ._checks import concrete, fail_if
from ._flavours import flavour_count, star_array, structure_constants

# A dense Jacobian of more than this many state components is refused (its eigenvectors take
# M^2 complex numbers); larger systems need a matrix-free method.
MAX_DENSE = 4096


class LinearStability(eqx.Module):
    """Result of `linear_stability`.

    - `eigenvalues` `(K,)`: the spectrum of the linearization, largest growth rate first.
    - `vectors` `(K, *state)`: the eigenvectors (columns), in the state's own shape and frame
      (the co-rotating frame when `rotation` is given), each of unit norm.
    - `residual`: `max |F'(state)|`, how far the state is from stationary.
    """

    eigenvalues: Complex[Array, " K"]
    vectors: Complex[Array, "K ..."]
    residual: Float[Array, ""]

    @property
    def rates(self) -> Float[Array, " K"]:
        """Growth rates `Re lambda` (largest first)."""
        return jnp.real(self.eigenvalues)

    @property
    def frequencies(self) -> Float[Array, " K"]:
        """Frequencies `Im lambda` of the modes."""
        return jnp.imag(self.eigenvalues)

    @property
    def growth_rate(self) -> Float[Array, ""]:
        """The largest growth rate (`<= 0`, up to rounding, for a stable state)."""
        return jnp.real(self.eigenvalues[0])


def _tangent_basis(P: np.ndarray, tol: float) -> np.ndarray:
    """`(M, K)` orthonormal columns spanning, for every particle, the range of `X -> X * P_i`."""
    D = P.shape[-1]
    n = flavour_count(D, "state")
    f = structure_constants(n)[0]
    flat = P.reshape(-1, D)
    blocks = []
    for i, p in enumerate(flat):
        A = np.einsum("abc,b->ca", f, p)  # (X * p)_c = f_abc X_a p_b
        U, S, _ = np.linalg.svd(A)
        keep = U[:, S > tol * max(1.0, float(np.abs(p).max()))]
        block = np.zeros((flat.size, keep.shape[1]))
        block[i * D : (i + 1) * D] = keep
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def linear_stability(
    field,
    state: Float[ArrayLike, "... D"],
    *,
    t: float = 0.0,
    rotation: "tuple[ArrayLike, ArrayLike] | None" = None,
    tangent: bool | None = None,
    tol: float | None = None,
    stationary: bool = True,
) -> LinearStability:
    """The linearization of the mean-field vector `field` about `state` and its spectrum.

    **Arguments:**
    - `field`: a mean-field vector field (`field(t, P)`), e.g. `GroupField` or `MultiAngleField`.
    - `state`: the state, of the field's shape (`(G, D)` for groups, `(N, D)` for angles).
    - `t`: the time the field is evaluated at (for profiles of `mu` or matter).
    - `rotation`: `(Omega, axis)` for a state precessing uniformly about `axis` (a vector of the
      state's length `D`, e.g. `B`) at `Omega`: the linearization in the co-rotating frame.
    - `tangent`: linearize on the tangent spaces of the particles' orbits (default: when the
      field has no collision term, whose mean field keeps every `|P_i|`).
    - `tol`: the largest `max |F'(state)|` accepted as stationary (default: `1e-6` in float64,
      `1e-3` in float32, relative to the largest component of the state); a state that is not
      stationary is refused, as its linearization would mean nothing.
    - `stationary=False`: accept a state that drifts (the instantaneous linearization with the
      background frozen, e.g. the mean field plus collision about a state that decoheres slowly
      against the rates it finds; `residual` says how fast it drifts).

    **Returns:** a `LinearStability`. Jittable and vmappable over the field's parameters (the
    tangent spaces come from the concrete `state`; with `tangent=False` the state may be traced).
    The Jacobian is dense (`jax.jacfwd`): states of more than `MAX_DENSE` components are refused.
    """
    state = jnp.asarray(state)
    if not jnp.issubdtype(state.dtype, jnp.floating):
        state = state.astype(jnp.result_type(float))
    D = state.shape[-1] if state.ndim else 0
    if D not in (3, 8):
        raise ValueError(
            f"state must have shape (..., 3) (two flavours) or (..., 8) (three flavours), got "
            f"{state.shape}"
        )
    n = flavour_count(D, "state")
    M = state.size
    if M > MAX_DENSE:
        raise ValueError(
            f"state has {M} components: its dense Jacobian and eigenvectors would take "
            f"{2 * M * M * 16 / 2**30:.1f} GiB; linear_stability takes at most {MAX_DENSE} "
            "(fewer groups or angles)"
        )
    collision = getattr(field, "collision", "none")
    tangent = collision == "none" if tangent is None else bool(tangent)
    dtype = state.dtype
    if rotation is not None:
        Omega, axis = rotation
        Omega = jnp.asarray(Omega, dtype)
        axis = jnp.asarray(axis, dtype)
        if axis.shape != (D,):
            raise ValueError(f"rotation axis must have shape ({D},), got {axis.shape}")

    def rotating(P):
        F = field(t, P)
        if rotation is not None:
            F = F - Omega * star_array(jnp.broadcast_to(axis, P.shape), P, n)
        return F

    shape = state.shape
    flat = lambda P: rotating(P.reshape(shape)).reshape(-1)
    residual = jnp.max(jnp.abs(flat(state.reshape(-1))))
    if tol is None:
        tol = 1e-6 if dtype == jnp.float64 else 1e-3
    scale = jnp.maximum(jnp.max(jnp.abs(state)), 1.0)
    residual = fail_if(
        residual,
        (residual > tol * scale) & stationary,
        f"state is not stationary: max |F'(state)| = "
        f"{_show(residual)} > tol = {tol:g}; give a stationary state, or rotation=(Omega, axis) "
        "for one that precesses uniformly",
    )
    J = jax.jacfwd(flat)(state.reshape(-1))
    if tangent:
        value = concrete(state)
        if value is None:
            raise ValueError(
                "tangent=True needs a concrete state (its orbits' tangent spaces have a size "
                "fixed before tracing); pass tangent=False to linearize a traced state"
            )
        E = jnp.asarray(_tangent_basis(np.asarray(value, np.float64), 1e-9), dtype)
        J = E.T @ J @ E
    values, vecs = jnp.linalg.eig(J)
    if tangent:
        vecs = E.astype(vecs.dtype) @ vecs
    order = jnp.argsort(-jnp.real(values))
    values, vecs = values[order], vecs[:, order]
    vecs = vecs / jnp.linalg.norm(vecs, axis=0, keepdims=True).astype(vecs.dtype)
    return LinearStability(
        eigenvalues=values, vectors=vecs.T.reshape((-1,) + shape), residual=residual
    )


def _show(x) -> str:
    value = concrete(x)
    return "a traced value" if value is None else f"{float(value):.3g}"
