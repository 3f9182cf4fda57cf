"""n flavours (physics.md section 11): generalized Bloch vectors, the structure constants of
SU(n), and the vacuum and matter vectors of three-flavour mixing.

A neutrino of `n` flavours is a density matrix `rho = 1/n + P.lambda / 2` with the `D = n^2 - 1`
generalized Gell-Mann matrices `lambda^a` (`Tr lambda^a lambda^b = 2 delta_ab`), so that
`P^a = Tr(rho lambda^a)`; for `n = 2` they are the Pauli matrices and `P` the Bloch vector.
A field `H` (a Hermitian matrix `Tr(H)/n + H.lambda / 2`) moves `P` by `dP/dt = H * P`,
`(A * B)_c = f_abc A_a B_b` with the structure constants `f` (`*` is the cross product for
`n = 2`). A pure state has `|P|^2 = 2 (n - 1) / n`.

The vacuum vector `B^a = Tr(M lambda^a)` of the mass-squared matrix `M = U diag(m^2) U^dag`,
in units of the largest splitting, so that a group of frequency `omega` feels `omega B`; for
two flavours this is the unit `B` of section 1. Matter is `lambda(t) L` with
`L^a = Tr(diag(1, 0, ..., 0) lambda^a)` in the flavour basis.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._support.checks import check_if_concrete, check_option, concrete

FLAVOUR_COUNTS = (2, 3)

# The NuFIT 6.0 global fit with Super-Kamiokande atmospheric data (Esteban et al., JHEP 12 (2024)
# 216, arXiv:2410.05380), best fit for each ordering: angles in degrees, splittings in eV^2
# (`dm2_3l` is dm2_31 > 0 for normal ordering, dm2_32 < 0 for inverted ordering).
NUFIT_6_0 = {
    "normal": dict(theta12=33.68, theta13=8.56, theta23=43.3, delta=212.0, dm2_21=7.49e-5,
                   dm2_3l=2.513e-3),
    "inverted": dict(theta12=33.68, theta13=8.59, theta23=47.9, delta=274.0, dm2_21=7.49e-5,
                     dm2_3l=-2.484e-3),
}  # fmt: skip


def dimension(n: int) -> int:
    """`n^2 - 1`, the length of an `n`-flavour Bloch vector."""
    return n * n - 1


def flavour_count(size: int, name: str = "P") -> int:
    """The flavour count `n` whose Bloch vectors have `size` components (3 or 8)."""
    for n in FLAVOUR_COUNTS:
        if dimension(n) == size:
            return n
    raise ValueError(
        f"{name} must have 3 components (two flavours) or 8 (three flavours) on its last axis, "
        f"got {size}"
    )


def flavours_of(P, name: str) -> int:
    """The flavour count of Bloch vectors `P` (any array-like) from their last axis, 3 or 8."""
    shape = np.shape(P)
    if not shape or shape[-1] not in (3, 8):
        raise ValueError(
            f"{name} must have shape (..., 3) (two flavours) or (..., 8) (three flavours), got "
            f"shape {shape}"
        )
    return flavour_count(shape[-1], name)


def check_flavours(n_flavours, name: str = "n_flavours") -> int:
    if isinstance(n_flavours, bool) or n_flavours not in FLAVOUR_COUNTS:
        raise ValueError(f"{name} must be 2 or 3, got {n_flavours!r}")
    return int(n_flavours)


@functools.cache
def gell_mann(n: int) -> np.ndarray:
    """The generalized Gell-Mann matrices `(n^2 - 1, n, n)` (complex128), in the usual order:
    for `j = 2 ... n`, the symmetric and antisymmetric pair of each `(k, j)`, `k < j`, then the
    `(j - 1)`-th diagonal one. Pauli for `n = 2`; `lambda_1 ... lambda_8` for `n = 3`."""
    out = []
    for j in range(1, n):
        for k in range(j):
            sym = np.zeros((n, n), complex)
            sym[k, j] = sym[j, k] = 1
            anti = np.zeros((n, n), complex)
            anti[k, j], anti[j, k] = -1j, 1j
            out += [sym, anti]
        diag = np.zeros(n)
        diag[:j] = 1
        diag[j] = -j
        out.append(np.diag(diag * math.sqrt(2 / (j * (j + 1)))).astype(complex))
    return np.stack(out)


@functools.cache
def structure_constants(n: int) -> tuple[np.ndarray, np.ndarray]:
    """`(f, d)`, each `(D, D, D)` float64: `[lambda_a, lambda_b] = 2 i f_abc lambda_c`,
    `{lambda_a, lambda_b} = (4/n) delta_ab + 2 d_abc lambda_c`."""
    lam = gell_mann(n)
    ab = np.einsum("aij,bjk->abik", lam, lam)
    comm = ab - ab.transpose(1, 0, 2, 3)
    anti = ab + ab.transpose(1, 0, 2, 3)
    f = np.einsum("abik,cki->abc", comm, lam) / 4j
    d = np.einsum("abik,cki->abc", anti, lam) / 4
    return f.real.copy(), d.real.copy()


@functools.cache
def product_terms(n: int, symmetric: bool = False) -> tuple:
    """The nonzero terms of `(A * B)_c = f_abc A_a B_b` (or, `symmetric`, of
    `d(A, B)_c = d_abc A_a B_b`) for each output `c`: tuples `(a, b, coefficient)` with `a < b`
    (`a <= b` for `d`), each standing for `coefficient (A_a B_b - A_b B_a)` (for `d`,
    `coefficient (A_a B_b + A_b B_a)`, halved on the diagonal). For `n = 2` and `f` these are
    the cross product's terms in its usual order."""
    f, d = structure_constants(n)
    table = d if symmetric else f
    D = dimension(n)
    terms = []
    for c in range(D):
        row = []
        for a in range(D):
            for b in range(a if symmetric else a + 1, D):
                value = table[a, b, c]
                if abs(value) > 1e-12:
                    row.append((a, b, float(value) / (2 if symmetric and a == b else 1)))
        terms.append(tuple(row))
    return tuple(terms)


def _term(coefficient, x):
    return x if coefficient == 1.0 else (-x if coefficient == -1.0 else coefficient * x)


def star(A, B, n: int):
    """`(A * B)_c = f_abc A_a B_b` of component sequences `A`, `B` (each `D` arrays): a tuple of
    `D` arrays. The cross product for `n = 2`."""
    return tuple(
        sum(_term(k, A[a] * B[b] - A[b] * B[a]) for a, b, k in row) for row in product_terms(n)
    )


def dstar(A, B, n: int):
    """`d(A, B)_c = d_abc A_a B_b` of component sequences (zero for `n = 2`)."""
    return tuple(
        sum((_term(k, A[a] * B[b] + A[b] * B[a]) for a, b, k in row), 0.0 * A[0])
        for row in product_terms(n, symmetric=True)
    )


def star_major(A, B, n: int):
    """`A * B` of arrays whose components run along the first axis, `(D, ...)` (broadcast over
    the rest): the layout the mean fields compute in, each component a contiguous row. The
    cross product's six terms for `n = 2`; a contraction with `f_abc` otherwise (its 54 terms
    written out would make a program several times slower to compile)."""
    A, B = jnp.broadcast_arrays(A, B)
    if n == 2:
        return jnp.stack(star(A, B, n))
    f = jnp.asarray(structure_constants(n)[0], jnp.result_type(A, B))
    return jnp.einsum("abc,a...,b...->c...", f, A, B)


def dstar_major(A, B, n: int):
    """`d(A, B)` of arrays whose components run along the first axis, `(D, ...)` (zero for
    `n = 2`)."""
    A, B = jnp.broadcast_arrays(A, B)
    d = jnp.asarray(structure_constants(n)[1], jnp.result_type(A, B))
    return jnp.einsum("abc,a...,b...->c...", d, A, B)


def star_array(A, B, n: int):
    """`A * B` of arrays `(..., D)`."""
    if n == 2:
        return jnp.cross(A, B)
    f = jnp.asarray(structure_constants(n)[0], jnp.result_type(A, B))
    return jnp.einsum("abc,...a,...b->...c", f, A, B)


def dstar_array(A, B, n: int):
    """`d(A, B)` of arrays `(..., D)`."""
    d = jnp.asarray(structure_constants(n)[1], jnp.result_type(A, B))
    return jnp.einsum("abc,...a,...b->...c", d, A, B)


def pmns(theta12, theta13, theta23, delta=0.0) -> np.ndarray:
    """The PMNS matrix `U = R23 U13(delta) R12` (angles in radians;
    `nu_alpha = sum_k U_ak nu_k`); a JAX array where an angle is traced (under `jit` or a
    derivative), else NumPy complex128."""
    for name, value in (("theta12", theta12), ("theta13", theta13), ("theta23", theta23),
                        ("delta", delta)):  # fmt: skip
        check_if_concrete(value, name)
    angles = (theta12, theta13, theta23, delta)
    xp = np if all(concrete(a) is not None for a in angles) else jnp
    cdtype = np.complex128 if xp is np else jnp.result_type(complex)
    z = lambda x: xp.asarray(x).astype(cdtype)
    (c12, s12), (c13, s13), (c23, s23) = ((z(xp.cos(a)), z(xp.sin(a))) for a in angles[:3])
    e = xp.exp(-1j * z(delta))
    one, zero = xp.ones_like(c12), xp.zeros_like(c12)
    R23 = xp.stack([xp.stack([one, zero, zero]), xp.stack([zero, c23, s23]),
                    xp.stack([zero, -s23, c23])])  # fmt: skip
    U13 = xp.stack([xp.stack([c13, zero, s13 * e]), xp.stack([zero, one, zero]),
                    xp.stack([-s13 * xp.conj(e), zero, c13])])  # fmt: skip
    R12 = xp.stack([xp.stack([c12, s12, zero]), xp.stack([-s12, c12, zero]),
                    xp.stack([zero, zero, one])])  # fmt: skip
    return R23 @ U13 @ R12


def mass_squares(ordering: str = "normal", dm2_21=None, dm2_3l=None) -> np.ndarray:
    """`(m1^2, m2^2, m3^2)` in units of `|dm2_3l|`, the lightest at 0 (NuFIT 6.0 splittings by
    default)."""
    check_option(ordering, "ordering", ("normal", "inverted"))
    fit = NUFIT_6_0[ordering]
    dm2_21 = fit["dm2_21"] if dm2_21 is None else float(dm2_21)
    dm2_3l = fit["dm2_3l"] if dm2_3l is None else float(dm2_3l)
    if (ordering == "normal") != (dm2_3l > 0) or dm2_21 <= 0:
        raise ValueError(
            f"ordering={ordering!r} needs dm2_21 > 0 and dm2_3l "
            f"{'> 0' if ordering == 'normal' else '< 0'}, got {dm2_21} and {dm2_3l}"
        )
    r = dm2_21 / abs(dm2_3l)
    return np.array([0.0, r, 1.0]) if ordering == "normal" else np.array([1 - r, 1.0, 0.0])


def pmns_vacuum(
    ordering: str = "normal",
    basis: str = "flavour",
    *,
    theta12=None,
    theta13=None,
    theta23=None,
    delta=None,
    dm2_21=None,
    dm2_3l=None,
    dtype=None,
) -> Float[Array, "8"]:
    """The three-flavour vacuum vector `B` (8 components) for `omega = |dm2_3l| / (2E)`: a group
    of frequency `omega` feels `omega B`. Angles in radians, splittings in eV^2; each defaults to
    the NuFIT 6.0 best fit of `ordering` (`NUFIT_6_0`, which lists the angles in degrees).
    `basis="mass"`: the mass basis (then only the splittings matter)."""
    check_option(basis, "basis", ("flavour", "flavor", "mass"))
    given = dict(theta12=theta12, theta13=theta13, theta23=theta23, delta=delta)
    given = {name: value for name, value in given.items() if value is not None}
    if basis == "mass" and given:
        raise ValueError(
            f"pmns_vacuum(basis='mass') has no mixing angles, so {', '.join(given)} would be "
            "ignored: drop them, or give basis='flavour'"
        )
    for name, value in {**given, "dm2_21": dm2_21, "dm2_3l": dm2_3l}.items():
        number = concrete(value)
        if number is not None and value is not None and not np.all(np.isfinite(number)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    fit = NUFIT_6_0[check_option(ordering, "ordering", ("normal", "inverted"))]
    pick = lambda value, key: math.radians(fit[key]) if value is None else value
    m2 = mass_squares(ordering, dm2_21, dm2_3l)
    if basis == "mass":
        M = np.diag(m2).astype(complex)
    else:
        U = pmns(
            pick(theta12, "theta12"), pick(theta13, "theta13"), pick(theta23, "theta23"),
            pick(delta, "delta"),
        )  # fmt: skip
        M = (U * m2.astype(complex)) @ U.conj().T
    B = (jnp if isinstance(M, jax.Array) else np).einsum("ij,aji->a", M, gell_mann(3)).real
    return jnp.asarray(B, dtype=dtype or jnp.result_type(float))


def flavour_axis(n: int = 3, *, dtype=None) -> Float[Array, " D"]:
    """`L^a = Tr(diag(1, 0, ...) lambda^a)`: the matter vector of the electron flavour in the
    flavour basis (`(0, 0, 1)` for two flavours)."""
    n = check_flavours(n)
    L = np.real(gell_mann(n)[:, 0, 0])
    return jnp.asarray(L, dtype=dtype or jnp.result_type(float))


def default_matter_axis(B, n: int, argument: str = "matter"):
    """`flavour_axis(n)`, the matter axis used when no `L` is given, refused when it commutes
    with a concrete `B` (`B` in the mass basis): matter along it would then only shift the vacuum
    frequencies of the mass states, and change no flavour, without a word."""
    L = flavour_axis(n)
    value = concrete(B)
    if value is not None:
        f = structure_constants(n)[0]
        commutator = np.einsum(
            "abc,a,b->c", f, np.asarray(value, float), np.real(gell_mann(n)[:, 0, 0])
        )
        if np.max(np.abs(commutator)) <= 1e-9 * max(1.0, float(np.max(np.abs(value)))):
            example = "nu_e('mass', theta)" if n == 2 else "the electron flavour in B's basis"
            raise ValueError(
                f"{argument} acts along L, whose default is the electron flavour in the flavour "
                f"basis (flavour_axis({n})); B = {np.round(np.asarray(value, float), 6).tolist()} "
                f"commutes with it (B in the mass basis, or no mixing), so the matter potential "
                f"would change no flavour: pass L, the electron flavour in B's basis "
                f"(L={example}), or B in the flavour basis (L=flavour_axis({n}) keeps this axis)"
            )
    return L


def adjoint(U) -> np.ndarray:
    """The rotation `R_ab = Tr(lambda_a U lambda_b U^dag) / 2` that a unitary `U` (`n x n`) makes
    on Bloch vectors: the Bloch vector of `U rho U^dag` is `R P`."""
    U = jnp.asarray(U)
    lam = jnp.asarray(gell_mann(U.shape[-1]), U.dtype)
    turned = U[..., None, :, :] @ lam @ jnp.conj(jnp.swapaxes(U, -1, -2))[..., None, :, :]
    return jnp.real(jnp.einsum("aij,...bji->...ab", lam, turned)) / 2


def field_turns(h, angle_scale):
    """The rotations `(..., D, D)` of Bloch vectors under fields `h` `(..., D)` over a time
    `angle_scale`: `exp(angle_scale h *)`, by the eigenvectors of the Hermitian `h.lambda / 2`."""
    n = flavour_count(h.shape[-1], "the field")
    cdtype = jnp.complex128 if h.dtype == jnp.float64 else jnp.complex64
    lam = jnp.asarray(gell_mann(n), cdtype)
    H = jnp.einsum("...a,aij->...ij", h.astype(cdtype), lam) / 2
    energies, V = jnp.linalg.eigh(H)
    phases = jnp.exp(-1j * (energies * angle_scale).astype(cdtype))
    U = (V * phases[..., None, :]) @ jnp.conj(jnp.swapaxes(V, -1, -2))
    R = adjoint(U).astype(h.dtype)
    # One Newton-Schulz step towards the nearest orthogonal matrix: the float32 eigenvectors
    # leave `R^T R - 1` at about 1e-6, a bias a step applied thousands of times would
    # accumulate in `|P|`; after it, the rounding of the entries is what remains.
    eye = jnp.eye(R.shape[-1], dtype=R.dtype)
    return R @ (1.5 * eye - 0.5 * jnp.swapaxes(R, -1, -2) @ R)


def turn_matrices(h, duration):
    """The turns `(..., D, D)` of Bloch vectors about fields `h` `(..., D)` over a time
    `duration`, `exp(duration h *)`: the one place a turn about a field is computed. Two
    flavours: the right-handed rotation about `h` by `|h| duration` (Rodrigues; exactly the
    identity where `h = 0`); three: `field_turns`."""
    if h.shape[-1] != 3:
        return field_turns(h, duration)
    norm = jnp.sqrt(jnp.sum(h * h, axis=-1))
    n = h / jnp.where(norm > 0, norm, 1)[..., None]
    angle = norm * duration
    sin, cos = jnp.sin(angle)[..., None, None], jnp.cos(angle)[..., None, None]
    zero = jnp.zeros_like(n[..., 0])
    cross = jnp.stack(
        [
            jnp.stack([zero, -n[..., 2], n[..., 1]], -1),
            jnp.stack([n[..., 2], zero, -n[..., 0]], -1),
            jnp.stack([-n[..., 1], n[..., 0], zero], -1),
        ],
        axis=-2,
    )
    eye = jnp.eye(3, dtype=h.dtype)
    return cos * eye + sin * cross + (1 - cos) * n[..., :, None] * n[..., None, :]


def mass_frame(B) -> tuple[Array, Array, tuple]:
    """The carried frame of a vacuum vector `B` `(D,)`: `(M, factors, planes)` with `M` `(D, D)`
    taking Bloch vectors to components in the eigenbasis of `B.lambda / 2` (eigenvalues `e`
    ascending), and for each off-diagonal pair `(k, j)` the plane `(sym, anti)` of its two
    components, which a field `omega B` turns by `omega t factor`, `factor = e_j - e_k`:
    `x' = x cos + y sin`, `y' = y cos - x sin`. Two flavours: rows `e1, e2, B` (`B` unit), the
    plane `(0, 1)` with factor `-1` (a right-handed turn about `B`)."""
    n = flavour_count(B.shape[-1], "B")
    if n == 2:
        helper = jnp.zeros(3, B.dtype).at[jnp.argmin(jnp.abs(B))].set(1)
        e1 = jnp.cross(helper, B)
        e1 = e1 / jnp.linalg.norm(e1)
        return jnp.stack([e1, jnp.cross(B, e1), B]), -jnp.ones(1, B.dtype), ((0, 1),)
    cdtype = jnp.complex128 if B.dtype == jnp.float64 else jnp.complex64
    H = jnp.einsum("a,aij->ij", B.astype(cdtype), jnp.asarray(gell_mann(n), cdtype)) / 2
    e, V = jnp.linalg.eigh(H)
    M = adjoint(jnp.conj(V.T)).astype(B.dtype)
    planes, factors, a = [], [], 0
    for j in range(1, n):
        for k in range(j):
            planes.append((a, a + 1))
            factors.append(e[j] - e[k])
            a += 2
        a += 1
    return M, jnp.stack(factors).astype(B.dtype), tuple(planes)
