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

from .._physics.flavours import flavour_count, star_array, structure_constants
from .._sampling.options import check_count
from .._support.checks import check_finite, concrete, fail_if, refuse
from .fields import mean_field

# A dense Jacobian of more than this many state components is refused (its eigenvectors take
# M^2 complex numbers); larger systems need a matrix-free method.
MAX_DENSE = 4096
# The matrix-free method's Krylov space: each vector is one ODE solve of the linearized flow and
# `M` numbers on the host; more than this would take longer than the dense method it replaces.
MAX_KRYLOV = 512


def _finite_scalar(x, name: str, dtype, positive: bool = False):
    """A real scalar, refused (naming `name`) if NaN or inf, or if not > 0 with `positive`."""
    x = jnp.asarray(x)
    if x.ndim != 0 or not (
        jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)
    ):
        raise ValueError(f"{name} must be a real number, got {x!r}")
    what = "a finite number > 0" if positive else "a finite number"
    x = refuse(x, lambda xp, v: ~xp.isfinite(v), f"{name} must be {what}, got NaN or inf")
    if positive:
        x = refuse(x, lambda xp, v: v <= 0, f"{name} must be {what}")
    return x.astype(dtype)


class LinearStability(eqx.Module):
    """Result of `linear_stability`.

    - `eigenvalues` `(K,)`: the spectrum of the linearization, largest growth rate first.
    - `vectors` `(K, *state)`: the eigenvectors (columns), in the state's own shape and frame
      (the co-rotating frame when `rotation` is given), each of unit norm.
    - `residual`: `max |F'(state)|`, how far the state is from stationary.
    - `mode_residuals` `(K,)` (matrix-free method only, else None): `|J v - lambda v|` of each
      unit mode, how well it has converged (the growing modes first; modes on the stable bulk
      of the spectrum need not converge).
    """

    eigenvalues: Complex[Array, " K"]
    vectors: Complex[Array, "K ..."]
    residual: Float[Array, ""]
    mode_residuals: Float[Array, " K"] | None = None

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


def _orbit_directions(P: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """`(U, keep)`: for every particle `(N, D, D)` left singular vectors of `X -> X * P_i` and
    `(N, D)` which of them span its range (singular value above `tol`, relative to the state's
    largest component when that exceeds 1)."""
    D = P.shape[-1]
    f = structure_constants(flavour_count(D, "state"))[0]
    flat = P.reshape(-1, D)
    A = np.einsum("abc,nb->nca", f, flat)  # (X * p)_c = f_abc X_a p_b
    U, S, _ = np.linalg.svd(A)
    scale = np.maximum(1.0, np.abs(flat).max(axis=1))
    return U, S > tol * scale[:, None]


def _tangent_basis(P: np.ndarray, tol: float) -> np.ndarray:
    """`(M, K)` orthonormal columns spanning, for every particle, the range of `X -> X * P_i`."""
    U, keep = _orbit_directions(P, tol)
    N, D = keep.shape
    blocks = []
    for i in range(N):
        block = np.zeros((N * D, int(keep[i].sum())))
        block[i * D : (i + 1) * D] = U[i][:, keep[i]]
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
    modes: int | None = None,
    krylov: int | None = None,
    horizon: float | None = None,
) -> LinearStability:
    """The linearization of the mean-field vector `field` about `state` and its spectrum.

    **Arguments:**
    - `field`: a mean-field vector field (`field(t, P)`), e.g. `GroupField` or `MultiAngleField`.
    - `state`: the state, of the field's shape (`(G, D)` for groups, `(N, D)` for angles).
    - `t`: the time the field is evaluated at (for profiles of `mu` or matter).
    - `rotation`: `(Omega, axis)` for a state precessing uniformly about `axis` (a vector of the
      state's length `D`, e.g. `B`) at `Omega`: the linearization in the co-rotating frame.
    - `tangent`: linearize on the tangent spaces of the particles' orbits (default: when the
      field has no collision term and its system no opacities, so that it keeps every
      `|P_i|`). With opacities the state holds each class's trace first (`(K, 1 + D)`), and a
      stationary state is a fixed point of emission, absorption and the mean field together
      (e.g. the flavour-diagonal equilibrium): its growth rate is the collisional instability's.
    - `tol`: the largest `max |F'(state)|` accepted as stationary (default: `1e-6` in float64,
      `1e-3` in float32, relative to the largest component of the state); a state that is not
      stationary is refused, as its linearization would mean nothing.
    - `stationary=False`: accept a state that drifts (the instantaneous linearization with the
      background frozen, e.g. the mean field plus collision about a state that decoheres slowly
      against the rates it finds; `residual` says how fast it drifts).

    - `modes`: compute only the `modes` leading modes, matrix-free (`_leading_modes`: Arnoldi
      on the propagator `exp(J T)` of the linearized flow, every product one ODE solve of
      Jacobian-vector products, the eigenvalues Rayleigh quotients of `J` on the Ritz vectors),
      with a Krylov space of `krylov` vectors (default `2 modes + 10`) over a horizon
      `horizon` (`T`, default `8 / max |J v|` estimated on a random `v`; modes growing at
      `kappa` are separated from the stable ones by `exp(kappa T)`). For large systems (N =
      1e4 angles in seconds); host-driven, not jittable.

    **Returns:** a `LinearStability`. Dense: jittable and vmappable over the field's parameters
    (the tangent spaces come from the concrete `state`; with `tangent=False` the state may be
    traced); states of more than `MAX_DENSE` components are refused (use `modes=`).
    """
    state = jnp.asarray(state)
    if not jnp.issubdtype(state.dtype, jnp.floating):
        state = state.astype(jnp.result_type(float))
    expected = mean_field(field).shape
    if state.shape != expected:
        traces = field.system.opacities is not None
        raise ValueError(
            f"state must have the field's shape {expected} (one Bloch vector per group or angle "
            f"of {type(field).__name__}"
            + (", after its trace: the system has opacities" if traces else "")
            + f"), got {state.shape}"
        )
    D = jnp.shape(field.system.B)[-1]  # the Bloch vectors' length (the trace apart)
    state = check_finite(state, "state")
    M = state.size
    if M > MAX_DENSE and modes is None:
        raise ValueError(
            f"state has {M} components: its dense Jacobian and eigenvectors would take "
            f"{2 * M * M * 16 / 2**30:.1f} GiB; the dense method takes at most {MAX_DENSE}: pass "
            "modes=k for the k leading modes, matrix-free"
        )
    if modes is not None:
        modes = check_count(modes, "modes")
        krylov = 2 * modes + 10 if krylov is None else check_count(krylov, "krylov")
        if krylov < modes:
            raise ValueError(f"krylov={krylov} must be at least modes={modes}")
        if krylov > MAX_KRYLOV:
            raise ValueError(
                f"modes={modes} needs a Krylov space of krylov={krylov} vectors, each one ODE "
                f"solve of the linearized flow: at most {MAX_KRYLOV} (modes <= "
                f"{(MAX_KRYLOV - 10) // 2} with the default krylov = 2 modes + 10); for more "
                f"modes of a state of up to {MAX_DENSE} components use the dense method "
                "(modes=None)"
            )
        if horizon is not None:
            horizon = _finite_scalar(horizon, "horizon", state.dtype, positive=True)
        krylov = min(krylov, M)
    elif horizon is not None or krylov is not None:
        raise ValueError(
            "horizon and krylov are options of the matrix-free method: pass modes=k with them "
            "(the dense method, modes=None, takes neither)"
        )
    kinetic = field.collision.present or field.system.opacities is not None
    if tangent and field.system.opacities is not None:
        raise ValueError(
            "tangent=True linearizes on the orbits of a mean field that keeps every |P_i|; with "
            "System.opacities the traces and lengths change: leave tangent at its default"
        )
    tangent = not kinetic if tangent is None else bool(tangent)
    dtype = state.dtype
    if rotation is not None:
        Omega, axis = rotation
        Omega = _finite_scalar(Omega, "rotation's Omega", dtype)
        axis = jnp.asarray(axis, dtype)
        if axis.shape != (D,):
            raise ValueError(f"rotation axis must have shape ({D},), got {axis.shape}")
        axis = check_finite(axis, "rotation axis")
    t = _finite_scalar(t, "t", dtype)

    shape = state.shape
    flat = _Flat(field, t, None if rotation is None else (Omega, axis), shape)
    residual = jnp.max(jnp.abs(flat(state.reshape(-1))))
    if tol is None:
        tol = 1e-6 if dtype == jnp.float64 else 1e-3
    elif not (isinstance(tol, (int, float, np.floating)) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    scale = jnp.maximum(jnp.max(jnp.abs(state)), 1.0)
    residual = fail_if(
        residual,
        ~(residual <= tol * scale) & stationary,  # a NaN residual is not stationary
        f"state is not stationary: max |F'(state)| = "
        f"{_show(residual)} > tol = {tol:g}; give a stationary state, or rotation=(Omega, axis) "
        "for one that precesses uniformly",
    )
    if modes is not None:
        return _leading_modes(flat, state, tangent, residual, min(modes, krylov), krylov, horizon)
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


class _Flat(eqx.Module):
    """The field in the co-rotating frame, `F'(P) = F(P) - Omega a * P`, on flat states (a
    Module, so that the matrix-free method's jitted solves are reused across calls)."""

    field: eqx.Module
    t: Array
    rotation: tuple | None
    shape: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, x):
        P = x.reshape(self.shape)
        F = self.field(self.t, P)
        if self.rotation is not None:
            # The Bloch vectors turn; a trace (the first component, with opacities) does not.
            Omega, axis = self.rotation
            D = axis.shape[-1]
            bloch = P[..., -D:]
            turn = Omega * star_array(jnp.broadcast_to(axis, bloch.shape), bloch, flavour_count(D))
            F = F.at[..., -D:].add(-turn)
        return F.reshape(-1)


class _Projector(eqx.Module):
    """Each particle's tangent-space projector `Q` `(N, D, D)` (None: the identity)."""

    Q: Array | None

    def __call__(self, v):
        if self.Q is None:
            return v
        D = self.Q.shape[-1]
        return jnp.einsum("nab,nb->na", self.Q, v.reshape(-1, D)).reshape(-1)


def _tangent_projectors(P: np.ndarray, tol: float) -> np.ndarray:
    """`(N, D, D)`: each particle's orthogonal projector onto the range of `X -> X * P_i` (the
    blocks of `_tangent_basis`, without building its `(M, K)` matrix)."""
    U, keep = _orbit_directions(P, tol)
    return np.einsum("nak,nk,nbk->nab", U, keep.astype(float), U)


def _jacobian_product(flat, state, project, v):
    """`J v`: the linearization of `flat` at `state`, restricted by `project`, on `v` (a JVP)."""
    return project(jax.jvp(flat, (state,), (project(v),))[1])


_apply = eqx.filter_jit(_jacobian_product)


@eqx.filter_jit
def _propagate(flat, state, project, v, horizon):
    """`exp(J T) v` for the linearization `J` of `flat` at `state` (restricted by `project`):
    the linearized flow `dv/dt = J v` solved by Tsit5 to `T = horizon`."""
    import diffrax

    f64 = v.dtype == jnp.float64
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, v, args: _jacobian_product(flat, state, project, v)),
        diffrax.Tsit5(),
        t0=0.0,
        t1=horizon,
        dt0=None,
        y0=v,
        stepsize_controller=diffrax.PIDController(
            rtol=1e-7 if f64 else 1e-4, atol=1e-9 if f64 else 1e-6
        ),
        max_steps=1_000_000,
    )
    return solution.ys[-1]


def _leading_modes(flat, state, tangent, residual, modes, krylov, horizon):
    """The `modes` leading modes, matrix-free: Arnoldi (Gram-Schmidt twice, on the host in
    float64) on `exp(J T)`, whose eigenvalues `exp(lambda T)` are largest in modulus where `Re
    lambda` is largest; each Ritz vector's eigenvalue is its Rayleigh quotient with `J` itself,
    so that the frequencies carry no `2 pi / T` ambiguity."""
    shape, dtype = state.shape, state.dtype
    x0 = state.reshape(-1)
    project = _Projector(None)
    if tangent:
        value = concrete(state)
        if value is None:
            raise ValueError("modes= with tangent=True needs a concrete state")
        Q = _tangent_projectors(np.asarray(value, np.float64), 1e-9)
        project = _Projector(jnp.asarray(Q, dtype))
    rng = np.random.default_rng(0)
    start = np.asarray(project(jnp.asarray(rng.normal(size=x0.size), dtype)), np.float64)
    if horizon is None:
        probe = start / np.linalg.norm(start)
        speed = float(np.linalg.norm(np.asarray(_apply(flat, x0, project, jnp.asarray(probe)))))
        horizon = 8.0 / max(speed, 1e-12)
    horizon = jnp.asarray(horizon, dtype)
    V = np.zeros((krylov + 1, x0.size))
    H = np.zeros((krylov + 1, krylov))
    V[0] = start / np.linalg.norm(start)
    m = krylov
    for j in range(krylov):
        w = np.asarray(_propagate(flat, x0, project, jnp.asarray(V[j], dtype), horizon), float)
        for _ in range(2):
            h = V[: j + 1] @ w
            w = w - V[: j + 1].T @ h
            H[: j + 1, j] += h
        H[j + 1, j] = np.linalg.norm(w)
        if H[j + 1, j] < 1e-12 * np.abs(H[: j + 1, j]).max():  # an invariant subspace
            m = j + 1
            break
        V[j + 1] = w / H[j + 1, j]
    mu, Y = np.linalg.eig(H[:m, :m])
    top = np.argsort(-np.abs(mu))[:modes]
    X = V[:m].T @ Y[:, top]  # (M, modes) Ritz vectors
    X = X / np.linalg.norm(X, axis=0, keepdims=True)
    values, misfits = [], []
    for x in X.T:
        Ar = np.asarray(_apply(flat, x0, project, jnp.asarray(x.real, dtype)), float)
        Ai = np.asarray(_apply(flat, x0, project, jnp.asarray(x.imag, dtype)), float)
        value = np.vdot(x, Ar + 1j * Ai)
        values.append(value)
        misfits.append(np.linalg.norm(Ar + 1j * Ai - value * x))
    values, misfits = np.asarray(values), np.asarray(misfits)
    order = np.argsort(-values.real)
    cdtype = jnp.complex128 if dtype == jnp.float64 else jnp.complex64
    return LinearStability(
        eigenvalues=jnp.asarray(values[order], cdtype),
        vectors=jnp.asarray(X[:, order].T.reshape((-1,) + shape), cdtype),
        residual=residual,
        mode_residuals=jnp.asarray(misfits[order], dtype),
    )
