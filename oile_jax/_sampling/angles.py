"""Relative-angle models (physics.md section 3): how `x = 1 - v_i.v_j` is drawn for an encounter.

The encounter angle is `c = gamma * x`. Moments `<x>` and `<x^2>` are exposed because the
closed forms of physics.md sections 5-6 use them.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._support.checks import check_if_concrete, check_option, concrete
from .._support.trig import sin_cos_turns
from .options import check_count
from .random import uniform_pair


class AbstractAngleModel(eqx.Module):
    """How the relative direction of two neutrinos in an encounter is chosen."""

    @abc.abstractmethod
    def mean_x(self) -> Array:
        """`<x>`, the mean of `x = 1 - cos Theta`."""

    @abc.abstractmethod
    def mean_x2(self) -> Array:
        """`<x^2>`."""

    @abc.abstractmethod
    def pair_x(self, u, words, index_a, index_b, dtype) -> Array:
        """`x` of the pairs of neutrinos `(index_a, index_b)` of a gas, given one uniform
        `[0, 1)` draw `u` per pair and the realization's velocity words (`velocity_words`)."""

    @abc.abstractmethod
    def velocities(self, key: PRNGKeyArray, n: int, dtype) -> Float[Array, "n k"]:
        """The per-neutrino velocities `(n, 3)` the model keeps, or `(n, 0)` if it keeps none."""

    # Whether the model keeps per-neutrino velocities (returned by `simulate_gas`).
    keeps_velocities: eqx.AbstractClassVar[bool]
    # Whether `x` of a pair depends on the two groups only (then `GroupField` applies).
    by_group: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def for_gas(self, counts: tuple[int, ...]) -> "AbstractAngleModel":
        """This model for a gas of groups of `counts` neutrinos (a model that depends on the
        groups checks and binds them here)."""

    @abc.abstractmethod
    def group_weights(self, fractions) -> tuple[Array, Array]:
        """`(W, W2)` `(G, G)`: the mean of `x` and of `x^2` over a pair of a neutrino of group
        `g` and one of group `h`, for the group-reduced mean field (`GroupField`)."""

    @abc.abstractmethod
    def group_sums(
        self, fractions: Float[Array, " G"], values: Float[Array, "k G"], power: int
    ) -> Float[Array, "k G"]:
        """`sum_h W_gh f_h values_h` (`power` 1) or `sum_h W2_gh f_h values_h` (`power` 2), the
        weights of `group_weights` and the groups' weights `f` (`fractions`), of `values`
        `(k, G)` (the groups along the last axis, the layout `GroupField` computes in), in a
        cost linear in the number of groups where the coupling has low rank."""

    @abc.abstractmethod
    def group_diagonal(self, G: int) -> Float[Array, " G"]:
        """`W_gg`, the mean of `x` over two neutrinos of one group (`G` groups; refused where
        the model is of another number of groups)."""

    @staticmethod
    def velocity_words(key: PRNGKeyArray) -> Array:
        """The two 32-bit key words the velocities drawn with `key` are hashed from."""
        return jax.random.bits(key, (2,), dtype=jnp.uint32)


class AbstractGroupFreeAngleModel(AbstractAngleModel):
    """Angle models whose statistics do not depend on the groups: nothing to bind to a gas,
    and the same `<x>`, `<x^2>` for every pair of groups."""

    def for_gas(self, counts):
        return self

    def group_weights(self, fractions):
        G = jnp.shape(fractions)[0]
        return jnp.full((G, G), self.mean_x()), jnp.full((G, G), self.mean_x2())

    def group_sums(self, fractions, values, power):
        """Rank 1: `<x^power> sum_h f_h values_h` for every group."""
        mean = (self.mean_x() if power == 1 else self.mean_x2()).astype(values.dtype)
        return jnp.broadcast_to(mean * (values @ fractions)[:, None], values.shape)

    def group_diagonal(self, G):
        return jnp.full((G,), self.mean_x())


class AbstractFreshAngleModel(AbstractGroupFreeAngleModel):
    """Angle models that draw `x` afresh for every encounter (no per-neutrino state)."""

    keeps_velocities = False
    by_group = True

    @abc.abstractmethod
    def from_uniform(self, u: Float[Array, "..."]) -> Float[Array, "..."]:
        """`x` for each of the independent uniform `[0, 1)` draws `u`."""

    def pair_x(self, u, words, index_a, index_b, dtype):
        return self.from_uniform(u)

    def velocities(self, key, n, dtype):
        return jnp.zeros((n, 0), dtype=dtype)

    def sample(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype) -> Float[Array, "..."]:
        """Draw `x` for `shape` independent encounters."""
        return self.from_uniform(jax.random.uniform(key, shape, dtype=dtype))


class Isotropic(AbstractFreshAngleModel):
    """A fresh isotropic relative direction per encounter: `x ~ U[0, 2]`."""

    def from_uniform(self, u):
        return 2 * u

    def mean_x(self):
        return jnp.asarray(1.0)

    def mean_x2(self):
        return jnp.asarray(4.0 / 3.0)


class FixedAngle(AbstractFreshAngleModel):
    r"""Every encounter at the same angle `theta` (radians): $`x = 1 - \cos\theta`$.

    The default $`\theta = \pi/2`$ gives $`x = 1`$. `theta` is a traced leaf.
    """

    theta: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=jnp.pi / 2)

    def __check_init__(self):
        check_if_concrete(self.theta, "FixedAngle theta")

    def x(self, dtype=None) -> Array:
        theta = self.theta if dtype is None else self.theta.astype(dtype)
        return 1 - jnp.cos(theta)

    def from_uniform(self, u):
        return jnp.broadcast_to(self.x(u.dtype), u.shape)

    def mean_x(self):
        return self.x()

    def mean_x2(self):
        return self.x() ** 2


class FixedVelocities(AbstractGroupFreeAngleModel):
    r"""Each neutrino draws one isotropic unit velocity at the start and keeps it.

    $`x = 1 - \mathbf{v}_i \cdot \mathbf{v}_j`$; only meaningful for a gas (both partners
    persist). Over uniformly random pairs $`\langle x\rangle = 1`$,
    $`\langle x^2\rangle = 4/3`$, as for `Isotropic`.

    Velocities are a function of the neutrino's index in the gas (a counter-based hash keyed by
    the realization's velocity key), so a gas kept in any order finds them without storing
    them: `cos theta` and `phi` uniform on `[-1, 1)` and `[0, 2 pi)`.
    """

    keeps_velocities = True
    by_group = False

    @staticmethod
    def directions(words, index, dtype) -> tuple[Array, Array, Array]:
        """`(cos theta, sin theta, phi / 2 pi)` of the neutrinos `index` (any shape)."""
        u, turns = uniform_pair(words[0], words[1], index, dtype)
        cos = 2 * u - 1
        return cos, jnp.sqrt(jnp.maximum(1 - cos * cos, 0)), turns

    @classmethod
    def x(cls, words, index_a, index_b, dtype) -> Array:
        """`1 - v_a . v_b` of the pairs `(index_a, index_b)`."""
        cos_a, sin_a, turns_a = cls.directions(words, index_a, dtype)
        cos_b, sin_b, turns_b = cls.directions(words, index_b, dtype)
        cos_phi = sin_cos_turns(turns_a - turns_b)[1]
        return 1 - (cos_a * cos_b + sin_a * sin_b * cos_phi)

    def pair_x(self, u, words, index_a, index_b, dtype):
        return self.x(words, index_a, index_b, dtype)

    def velocities(self, key: PRNGKeyArray, n: int, dtype) -> Float[Array, "n 3"]:
        """The unit velocities of neutrinos `0 ... n - 1`, shape `(n, 3)`."""
        words = self.velocity_words(key)
        cos, sin, turns = self.directions(words, jnp.arange(n, dtype=jnp.uint32), dtype)
        sin_phi, cos_phi = sin_cos_turns(turns)
        return jnp.stack([sin * cos_phi, sin * sin_phi, cos], axis=-1)

    def mean_x(self):
        return jnp.asarray(1.0)

    def mean_x2(self):
        return jnp.asarray(4.0 / 3.0)


class AbstractGroupAngleModel(AbstractAngleModel):
    """Angle models of one direction (or ring of directions) per group of the gas, bound to the
    gas's group sizes by `for_gas`: over uniformly random pairs `<x^k> = sum_gh f_g f_h W_gh^(k)`
    with the weights of `group_weights` and `f` the groups' shares."""

    counts: eqx.AbstractVar[tuple[int, ...] | None]
    by_group = True

    def _bound(self) -> tuple[int, ...]:
        if self.counts is None:
            raise ValueError(f"{type(self).__name__}(...) is used by a gas, which binds its groups")
        return self.counts

    def _pair_mean(self, power: int):
        """`sum_gh f_g f_h W_gh` (`power` 1) or with `W2` (`power` 2), in the model's dtype."""
        counts = np.asarray(self._bound(), dtype=np.float64)
        W = self.group_weights(counts)[power - 1]
        f = jnp.asarray(counts / counts.sum(), dtype=W.dtype)
        return f @ W @ f

    def mean_x(self):
        return self._pair_mean(1)

    def mean_x2(self):
        return self._pair_mean(2)


class Beams(AbstractGroupAngleModel):
    r"""Every neutrino of group `g` moves along the unit vector `directions[g]` (beams; the
    two-beam fast-flavour problem): $`x = 1 - \mathbf{d}_g \cdot \mathbf{d}_h`$ for a pair of
    groups $`g`$, $`h`$.

    `directions` `(G, 3)` is traced; the model is bound to its gas's groups by the driver
    (`for_gas`). Over uniformly random pairs
    $`\langle x\rangle = \sum_{gh} f_g f_h (1 - \mathbf{d}_g \cdot \mathbf{d}_h)`$.
    """

    directions: Float[Array, "G 3"] = eqx.field(converter=jnp.asarray)
    counts: tuple[int, ...] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.directions.ndim != 2 or self.directions.shape[-1] != 3:
            raise ValueError(
                f"Beams directions must have shape (G, 3), one unit vector per group, got "
                f"{self.directions.shape}"
            )

    keeps_velocities = True

    def for_gas(self, counts):
        from .._support.checks import check_unit

        if self.directions.shape[0] != len(counts):
            raise ValueError(
                f"Beams directions has {self.directions.shape[0]} directions for a gas of "
                f"{len(counts)} groups; give one per group"
            )
        directions = check_unit(self.directions, "Beams directions")
        return Beams(directions, tuple(counts))

    def _for_groups(self, G: int):
        if self.directions.shape[0] != G:
            raise ValueError(
                f"Beams directions has {self.directions.shape[0]} directions for a field of {G} "
                "groups: give one unit vector per group"
            )

    def group_weights(self, fractions):
        self._for_groups(jnp.shape(fractions)[0])
        W = 1 - self.directions @ self.directions.T
        return W, W**2

    def group_sums(self, fractions, values, power):
        """`W = 1 - d d^T` has rank 4: `sum_h f_h w_h - d_g . sum_h f_h d_h w_h`; `W2 = 1 -
        2 d.d' + (d.d')^2` has rank 10, through the moments `sum_h f_h d_ha d_hb w_h`."""
        self._for_groups(values.shape[-1])
        d = self.directions.astype(values.dtype)
        fd = fractions[:, None] * d
        first = (values @ fd) @ d.T
        total = (values @ fractions)[:, None]
        if power == 1:
            return total - first
        second = jnp.einsum("kh,ha,hb->kab", values, fd, d)
        return total - 2 * first + jnp.einsum("kab,ga,gb->kg", second, d, d)

    def group_diagonal(self, G):
        self._for_groups(G)
        return 1 - jnp.sum(self.directions**2, axis=-1)

    def pair_x(self, u, words, index_a, index_b, dtype):
        from .._gas.groups import group_values

        counts, d = self._bound(), self.directions.astype(dtype)
        a, b = ([group_values(counts, d[:, k], i) for k in range(3)] for i in (index_a, index_b))
        return 1 - (a[0] * b[0] + a[1] * b[1] + a[2] * b[2])

    def velocities(self, key, n, dtype):
        return jnp.repeat(
            self.directions.astype(dtype),
            np.asarray(self._bound()),
            axis=0,
            total_repeat_length=n,
        )


class Axisymmetric(AbstractGroupAngleModel):
    r"""Every neutrino of group `g` moves at the polar cosine `u[g]` ($`u = \cos\theta = v_z`$)
    about the symmetry axis `z`, at an azimuth drawn afresh for each encounter: an axisymmetric
    angular distribution, each group one ring of directions (with its energy, a mode of a grid
    of energies and angles; `angle_grid`, `mode_grid`).

    Averaged over the azimuths, a pair of groups $`g`$, $`h`$ has

    $$`\langle x\rangle = 1 - u_g u_h, \qquad
    \langle x^2\rangle = (1 - u_g u_h)^2 + \tfrac12 (1 - u_g^2)(1 - u_h^2)`$$

    (ranks 2 and 3 in $`u`$), so that `GroupField`'s sums cost a few moments of the
    distribution; two neutrinos of one ring have $`\langle x\rangle = 1 - u_g^2`$. In a gas an
    encounter draws $`x = 1 - u_a u_b - \sin\theta_a \sin\theta_b \cos\phi`$, $`\phi`$
    uniform.

    `u` `(G,)` is traced; the model is bound to its gas's groups by the driver (`for_gas`).
    """

    u: Float[Array, " G"] = eqx.field(converter=jnp.asarray)
    counts: tuple[int, ...] | None = eqx.field(static=True, default=None)

    keeps_velocities = False

    def __check_init__(self):
        if self.u.ndim != 1:
            raise ValueError(
                f"Axisymmetric u must have shape (G,), one polar cosine per group, got "
                f"{self.u.shape}"
            )
        value = concrete(self.u)
        if value is not None and not (np.all(np.isfinite(value)) and np.all(np.abs(value) <= 1)):
            raise ValueError("Axisymmetric u must be polar cosines in [-1, 1]")

    def for_gas(self, counts):
        self._for_groups(len(counts))
        return Axisymmetric(self.u, tuple(counts))

    def _for_groups(self, G: int):
        if self.u.shape[0] != G:
            raise ValueError(
                f"Axisymmetric u has {self.u.shape[0]} polar cosines for {G} groups: give one "
                "per group"
            )

    def group_weights(self, fractions):
        self._for_groups(jnp.shape(fractions)[0])
        u = self.u
        uu = u[:, None] * u[None, :]
        sin2 = 1 - u**2
        return 1 - uu, (1 - uu) ** 2 + sin2[:, None] * sin2[None, :] / 2

    def group_sums(self, fractions, values, power):
        """`sum_h f_h (1 - u_g u_h) w_h` from the moments `T_m = sum_h f_h u_h^m w_h`; for
        `power` 2, `(3/2 - u_g^2/2) T_0 - 2 u_g T_1 + (3 u_g^2/2 - 1/2) T_2`."""
        self._for_groups(values.shape[-1])
        u = self.u.astype(values.dtype)
        T0, T1 = values @ fractions, values @ (fractions * u)
        if power == 1:
            return T0[:, None] - T1[:, None] * u
        T2 = values @ (fractions * u * u)
        u2 = u * u
        return (1.5 - u2 / 2) * T0[:, None] - 2 * u * T1[:, None] + (1.5 * u2 - 0.5) * T2[:, None]

    def group_diagonal(self, G):
        self._for_groups(G)
        return 1 - self.u**2

    def pair_x(self, u, words, index_a, index_b, dtype):
        from .._gas.groups import group_values

        polar = self.u.astype(dtype)
        cos_a, cos_b = (group_values(self._bound(), polar, i) for i in (index_a, index_b))
        sin_a, sin_b = (jnp.sqrt(jnp.maximum(1 - c * c, 0)) for c in (cos_a, cos_b))
        return 1 - cos_a * cos_b - sin_a * sin_b * sin_cos_turns(u)[1]

    def velocities(self, key, n, dtype):
        return jnp.zeros((n, 0), dtype=dtype)


ANGLE_RULES = ("gauss-legendre", "uniform")


def angle_grid(n: int, rule: str = "gauss-legendre") -> tuple[np.ndarray, np.ndarray]:
    """`(u, w)`: `n` polar cosines on `[-1, 1]` and their quadrature weights, summing to 1 (the
    mean over directions, `int du/2`): `"gauss-legendre"` (exact for polynomials of degree
    `2n - 1` in `u`) or `"uniform"` (the midpoints of `n` equal bins, weights `1/n`). NumPy
    float64, increasing."""
    check_option(rule, "rule", ANGLE_RULES)
    n = check_count(n, "n")
    if rule == "uniform":
        return -1 + (2 * np.arange(n) + 1) / n, np.full(n, 1 / n)
    u, w = np.polynomial.legendre.leggauss(n)
    return u, w / 2


def mode_grid(omegas, energy_weights, u, angle_weights) -> tuple[np.ndarray, ...]:
    """The product of a grid of energies (`omegas`, `energy_weights`, `(E,)`) and one of polar
    cosines (`u`, `angle_weights`, `(A,)`, e.g. `angle_grid`): `(omegas, weights, u)`, each
    `(E * A,)`, energy-major (mode `e * A + a`), the weights the products. With
    `GroupField(weights, omegas, System(angles=Axisymmetric(u)))` the spectrum on every ring."""
    arrays = [np.asarray(a, float) for a in (omegas, energy_weights, u, angle_weights)]
    names = ("omegas", "energy_weights", "u", "angle_weights")
    for name, a in zip(names, arrays, strict=True):
        if a.ndim != 1 or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be a finite 1-D array, got shape {a.shape}")
    om, we, u, wa = arrays
    if om.shape != we.shape or u.shape != wa.shape:
        raise ValueError(
            f"omegas and energy_weights, u and angle_weights must match in shape, got "
            f"{om.shape}, {we.shape}, {u.shape}, {wa.shape}"
        )
    E, A = om.size, u.size
    return np.repeat(om, A), (we[:, None] * wa[None, :]).reshape(-1), np.tile(u, E)


ANGLE_MODELS = ("isotropic", "fixed-angle", "fixed-velocities")


def fresh_angle_model(angles) -> "AbstractFreshAngleModel":
    """An angle-model option for the foreground model, whose partners are fresh every
    encounter: a model that draws `x` afresh (no per-neutrino velocities)."""
    angles = angle_model(angles)
    if not isinstance(angles, AbstractFreshAngleModel):
        raise ValueError(
            f"angles={type(angles).__name__}() is not available for the foreground model, whose "
            "background neutrinos are fresh every encounter; use 'isotropic' or 'fixed-angle'"
        )
    return angles


def angle_model(angles: "str | AbstractAngleModel | ArrayLike") -> AbstractAngleModel:
    """Resolve an angle-model option: an instance, or one of `ANGLE_MODELS` by name."""
    if isinstance(angles, AbstractAngleModel):
        return angles
    check_option(angles, "angles", ANGLE_MODELS)
    return {"isotropic": Isotropic, "fixed-angle": FixedAngle, "fixed-velocities": FixedVelocities}[
        angles
    ]()
