"""The mean field at the field's scale against the way NuGas solves it (SciPy's `solve_ivp`
RK45 on a vectorized NumPy right-hand side, the baseline), on the same equations, tolerances
and save times, in the same run: wall-clock seconds per solve, warm (the median over `--rounds`
rounds, oile_jax and the baseline alternating, after a first solve) and including compile (a
fresh process per size: the first solve, its compilation included, with the persistent
compilation cache off; imports excluded on both sides).

Problems (`--problems`), each at `--sizes` modes:
- `split`: NuGas's spectral split (its `spectral-splits` notebook, after arXiv:0705.1830): a
  box spectrum of frequencies on [0, 2] (midpoint weights), all modes at `P = (sqrt(3)/2, 0,
  1/2)` in the mass basis, `mu(t) = 100 exp(-0.03 t)` down to 0.1, inverted ordering
  (`h = +omega z`); 11 saves. The final spectrum swaps at the frequency lepton-number
  conservation predicts, 0.5.
- `eln`: a multi-angle, axisymmetric, homogeneous gas with an electron-lepton-number crossing,
  written as NuGas writes it (one Bloch vector per direction, signed ELN weights `g(u) =
  f_nue(u) - 0.8 f_nuebar(u)`, Gaussians in `1 - u` of widths 1 and 0.5, uniform `u` grid), in
  the fast limit (no vacuum), `mu = 10`: from a transverse seed of 1e-3 the homogeneous fast
  instability grows (at 0.2875, `linear_stability`), swings the flavour over and back; 11
  saves to `t = 40`.

oile_jax solves each with `GroupField` (`Isotropic()` or `Axisymmetric(u)` angles) and
`solve_meanfield`'s defaults (its eighth-order `FusedDopri8` from 3000 state components on,
diffrax's `Tsit5` below); `--solver tsit5` (`FusedTsit5`) or `dopri8` forces one. Both sides
at `rtol = atol = 1e-8`, float64. The table gives each side's seconds, the ratio (baseline /
oile_jax), the steps each took and the largest difference between their saved states.

    python experiments/benchmark_meanfield.py --sizes 101 1001 --rounds 3
    python experiments/benchmark_meanfield.py --json meanfield.json       # 101 ... 100 001
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import oile_jax as oj  # noqa: E402
from oile_jax._meanfield.solver import FusedDopri8, FusedTsit5  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TOLERANCE = 1e-8


def split_problem(M: int) -> dict:
    """NuGas's spectral split at `M` frequencies."""
    tau = 1 / 0.03
    return dict(
        omegas=(np.arange(M) + 0.5) * 2.0 / M,
        weights=np.full(M, 1.0 / M),  # g = 1/2 on [0, 2], midpoint rule
        u=None,
        mu=(100.0, tau),
        B=np.array([0.0, 0.0, 1.0]),
        P0=np.tile([np.sqrt(0.75), 0.0, 0.5], (M, 1)),
        ts=np.linspace(0.0, tau * np.log(1000.0), 11),
    )


def eln_problem(M: int) -> dict:
    """The axisymmetric ELN-crossing gas at `M` directions."""
    u, w = oj.angle_grid(M, "uniform")
    gauss = lambda width: np.exp(-((1 - u) ** 2) / (2 * width**2))
    nue, nuebar = gauss(1.0), gauss(0.5)
    g = w * (nue / (w @ nue) - 0.8 * nuebar / (w @ nuebar))
    # A transverse seed of 1e-3, the same function of u at every M.
    seed = 1e-3 * np.stack([np.cos(3 * u + 0.4), np.sin(5 * u)], axis=-1)
    return dict(
        omegas=np.zeros(M),
        weights=g,
        u=u,
        mu=(10.0, None),
        B=np.array([0.0, 0.0, -1.0]),
        P0=np.c_[seed, np.sqrt(1 - (seed**2).sum(axis=1))],
        ts=np.linspace(0.0, 40.0, 11),
    )


PROBLEMS = {"split": split_problem, "eln": eln_problem}


def baseline(problem: dict) -> tuple[np.ndarray, int]:
    """SciPy RK45 on the vectorized NumPy right-hand side, NuGas's way (states `(3, M)`
    internally): `dP_m/dt = (omega_m B + mu(t) (D0 - u_m D1)) x P_m`, `D0 = sum g P`,
    `D1 = sum g u P`. Returns the saved states `(T, M, 3)` and the number of evaluations."""
    w, u, B = problem["weights"], problem["u"], problem["B"]
    value, scale = problem["mu"]
    vacuum = B[:, None] * problem["omegas"][None, :]
    M = w.size

    def rhs(t, y):
        P = y.reshape(3, M)
        mu = value if scale is None else value * np.exp(-t / scale)
        H = vacuum + (mu * (P @ w))[:, None]
        if u is not None:
            H -= (mu * (P @ (w * u)))[:, None] * u[None, :]
        r = np.empty_like(P)
        r[0] = H[1] * P[2] - H[2] * P[1]
        r[1] = H[2] * P[0] - H[0] * P[2]
        r[2] = H[0] * P[1] - H[1] * P[0]
        return r.ravel()

    ts = problem["ts"]
    solution = solve_ivp(
        rhs, (ts[0], ts[-1]), problem["P0"].T.ravel(), method="RK45", t_eval=ts,
        rtol=TOLERANCE, atol=TOLERANCE,
    )  # fmt: skip
    if not solution.success:
        raise RuntimeError(f"the baseline failed: {solution.message}")
    return solution.y.T.reshape(-1, 3, M).transpose(0, 2, 1), int(solution.nfev)


def oile(problem: dict, solver: str):
    """The same problem through `GroupField` and `solve_meanfield`: `(states, steps)`."""
    value, scale = problem["mu"]
    mu = value if scale is None else oj.Exponential(value, scale)
    u = problem["u"]
    angles = oj.Isotropic() if u is None else oj.Axisymmetric(jnp.asarray(u))
    system = oj.System(gamma=0.0, mu=mu, B=jnp.asarray(problem["B"]), angles=angles)
    field = oj.GroupField(jnp.asarray(problem["weights"]), jnp.asarray(problem["omegas"]), system)
    solution = oj.solve_meanfield(
        field,
        jnp.asarray(problem["P0"]),
        jnp.asarray(problem["ts"]),
        rtol=TOLERANCE,
        atol=TOLERANCE,
        solver={"default": None, "tsit5": FusedTsit5(), "dopri8": FusedDopri8()}[solver],
    )
    return solution.P.block_until_ready(), solution.stats["num_steps"]


def cold(name: str, M: int, solver: str) -> float:
    """Seconds of the first solve in a fresh process (compilation included)."""
    command = [sys.executable, __file__, "--cold", name, str(M), "--solver", solver]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(output.split()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[101, 1001, 10_001, 100_001])
    p.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), default=["split", "eln"])
    p.add_argument("--rounds", type=int, default=3, help="warm rounds (default 3; 1 above 1e4)")
    p.add_argument("--solver", choices=("default", "dopri8", "tsit5"), default="default")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--cold", nargs=2, metavar=("PROBLEM", "M"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cold:
        problem = PROBLEMS[args.cold[0]](int(args.cold[1]))
        start = time.perf_counter()
        oile(problem, args.solver)
        print(time.perf_counter() - start)
        return 0
    if args.rounds < 1 or min(args.sizes) < 2:
        p.error("--rounds must be at least 1 and every size at least 2")
    args.repeats = 1
    result = common.benchmark_record(args)
    result.update(solver=args.solver, tolerance=TOLERANCE)
    print(
        f"{'problem':>8} {'modes':>7} {'baseline s':>11} {'oile warm s':>12} {'ratio':>7} "
        f"{'oile cold s':>12} {'ratio':>7} {'RK45 evals':>11} {'oile steps':>11} {'max diff':>9}"
    )
    for name in args.problems:
        for M in args.sizes:
            problem = PROBLEMS[name](M)
            first_cold = cold(name, M, args.solver)
            P, steps = oile(problem, args.solver)  # compiled in this process
            rounds = 1 if M > 20_000 else args.rounds
            times = {"baseline": [], "oile": []}
            for _ in range(rounds):
                start = time.perf_counter()
                reference, evaluations = baseline(problem)
                times["baseline"].append(time.perf_counter() - start)
                start = time.perf_counter()
                P, steps = oile(problem, args.solver)
                times["oile"].append(time.perf_counter() - start)
            row = {key: statistics.median(values) for key, values in times.items()}
            row.update(
                problem=name,
                modes=M,
                cold=first_cold,
                warm_ratio=row["baseline"] / row["oile"],
                cold_ratio=row["baseline"] / first_cold,
                baseline_evaluations=evaluations,
                oile_steps=int(steps),
                difference=float(np.max(np.abs(np.asarray(P) - reference))),
                rounds=times,
            )
            result["rows"].append(row)
            print(
                f"{name:>8} {M:>7} {row['baseline']:>11.3f} {row['oile']:>12.3f} "
                f"{row['warm_ratio']:>7.1f} {first_cold:>12.3f} {row['cold_ratio']:>7.1f} "
                f"{evaluations:>11} {int(steps):>11} {row['difference']:>9.1e}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
