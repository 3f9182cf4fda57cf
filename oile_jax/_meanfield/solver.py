"""Explicit Runge-Kutta solvers for the mean field whose stages are written out as single
expressions, for diffrax's `diffeqsolve` (its step-size controllers, saves and adjoints apply):
`solve_meanfield`'s own methods, not exported (their dense output is only third order, and
`solve_meanfield` saves at the ends of its steps).

diffrax's own `Tsit5` and `Dopri8` keep their stages in a buffer of shape `(stages, *state)` and
combine them through a loop over that buffer. For the mean field's states (`10^3` to `10^5`
Bloch vectors) on a CPU that bookkeeping costs several times the vector field itself
(`experiments/benchmark_meanfield.py`). Here each stage's input `y0 + h sum_j a_ij k_j` is one
expression of the stages before it, with the tableau's numbers as constants, which XLA fuses
into one pass over the state; the error estimate likewise. The tableaus are diffrax's
(`diffrax.Tsit5.tableau`, `diffrax.Dopri8.tableau`); the methods are the same, so that the
steps taken agree with diffrax's to rounding.

Dense output between steps is the cubic Hermite interpolant of the step's ends and slopes
(both methods evaluate the slope at the step's end, first same as last), third order: for saves
between steps at the method's accuracy, land the steps on the save times (the controller's
`step_ts`), as `solve_meanfield` does; there the interpolant is the step's end itself.
"""

from typing import Any, ClassVar

import diffrax
import jax.tree_util as jtu
import numpy as np
from jax import lax


def _combination(coefficients, stages):
    """`sum_j coefficients_j stages_j` over the nonzero coefficients (one expression)."""
    total = None
    for a, k in zip(coefficients, stages, strict=True):
        if a != 0.0:
            total = a * k if total is None else total + a * k
    return total


class _Hermite(diffrax.AbstractLocalInterpolation):
    """The cubic Hermite interpolant of a step from its ends `y0`, `y1` and slopes times the step
    `k0`, `k1`, evaluated only where asked (diffrax's `ThirdOrderHermitePolynomialInterpolation`
    forms its four coefficient arrays at every step)."""

    t0: Any
    t1: Any
    y0: Any
    y1: Any
    k0: Any
    k1: Any

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is not None:
            return jtu.tree_map(lambda a, b: a - b, self.evaluate(t1), self.evaluate(t0))
        s = (t0 - self.t0) / (self.t1 - self.t0)

        def cubic(y0, y1, k0, k1):
            s_ = s.astype(y0.dtype)
            return y0 + s_ * (k0 + s_ * ((3 * (y1 - y0) - 2 * k0 - k1) + s_ * (
                k0 + k1 - 2 * (y1 - y0))))  # fmt: skip

        return jtu.tree_map(cubic, self.y0, self.y1, self.k0, self.k1)


class AbstractFusedRungeKutta(diffrax.AbstractAdaptiveSolver):
    """An explicit, embedded, first-same-as-last Runge-Kutta method on ODE terms, from a
    diffrax `ButcherTableau`, with each stage's input a single fused expression."""

    tableau: ClassVar[diffrax.ButcherTableau]
    method_order: ClassVar[int]
    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = _Hermite

    def order(self, terms):
        return self.method_order

    def error_order(self, terms):
        return self.method_order

    def strong_order(self, terms):
        return None

    def init(self, terms, t0, t1, y0, args):
        return terms.vf(t0, y0, args)

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        tableau = self.tableau
        a_lower = [[float(a) for a in row] for row in tableau.a_lower]
        c = [float(x) for x in tableau.c]
        errors = [float(e) for e in tableau.b_error]
        f0 = solver_state
        if made_jump is not False:  # a jump in the field (diffrax's `jump_ts`): evaluate anew
            f0 = lax.cond(made_jump, lambda: terms.vf(t0, y0, args), lambda: solver_state)
        h = t1 - t0
        stages = [f0]
        y = y0
        for ci, row in zip(c, a_lower, strict=True):
            y = jtu.tree_map(
                lambda y0_, *ks, row=row: y0_ + h * _combination(row, ks).astype(y0_.dtype),
                y0,
                *stages,
            )
            stages.append(terms.vf(t0 + ci * h, y, args))
        # First same as last: the last stage's input is the solution (`b_sol` is its row).
        y1 = y
        error = jtu.tree_map(
            lambda *ks: (h * _combination(errors, ks)).astype(ks[0].dtype), *stages
        )
        f1 = stages[-1]
        dense_info = dict(
            y0=y0,
            y1=y1,
            k0=jtu.tree_map(lambda k: h * k, f0),
            k1=jtu.tree_map(lambda k: h * k, f1),
        )
        return y1, error, dense_info, f1, diffrax.RESULTS.successful


def _checked_tableau(tableau) -> diffrax.ButcherTableau:
    """A tableau fit for `AbstractFusedRungeKutta`: explicit, first same as last."""
    last = np.asarray(tableau.a_lower[-1], float)
    if not (tableau.fsal and np.allclose(last, np.asarray(tableau.b_sol, float)[: last.size])):
        raise ValueError("AbstractFusedRungeKutta needs a first-same-as-last tableau")
    return tableau


class FusedTsit5(AbstractFusedRungeKutta):
    """Tsitouras' 5(4) method (diffrax's `Tsit5` tableau), stages fused: 6 evaluations a
    step. The mean field's default at tolerances looser than about `1e-7`."""

    tableau = _checked_tableau(diffrax.Tsit5.tableau)
    method_order = 5


class FusedDopri8(AbstractFusedRungeKutta):
    """Dormand and Prince's 8(5,3) method (diffrax's `Dopri8` tableau, Hairer's DOP853), stages
    fused: 12 evaluations a step, several times fewer steps than a fifth-order method at tight
    tolerances. The mean field's default at `rtol <= 1e-7`."""

    tableau = _checked_tableau(diffrax.Dopri8.tableau)
    method_order = 8


# States of at least this many components are solved by `FusedDopri8` by default.
EIGHTH_ORDER_FROM = 3000


def default_solver(size: int, fused: bool = True) -> diffrax.AbstractSolver:
    """`solve_meanfield`'s method for a state of `size` components: an eighth-order method from
    `EIGHTH_ORDER_FROM` on (several times fewer steps at the default `rtol = 1e-8`, where the
    steps' cost dominates), diffrax's own `Tsit5` below (its stages in a loop: the vector field
    traced once, so that its program compiles faster, which dominates a small solve). The
    choice depends on the shape and the field's kind alone, so that a new tolerance or
    parameter reuses the compiled solve.

    The eighth-order method is `FusedDopri8`, or with `fused=False` diffrax's `Dopri8`: for
    fields with a part linear in the state (the opacities' terms), whose stages XLA folds
    into the later stages that read them and recomputes there (up to 4x the work of a step;
    an optimization barrier does not stop it), diffrax's stage buffer is the faster program
    (`experiments/benchmark_collisions.py`)."""
    if size < EIGHTH_ORDER_FROM:
        return diffrax.Tsit5()
    return FusedDopri8() if fused else diffrax.Dopri8()
