"""Poster, situation 2: a two-group neutrino gas.

Groups of 60% and 40% with vacuum frequencies omega = 0.1 mu and 0.2 mu, nearly pure +z and -z
in the mass basis with a 1e-3 transverse seed, P = +-(1e-3, 0, sqrt(1 - 1e-6)); gamma = 0.01,
stochastic schedule, fixed isotropic velocities. The seed grows (collective instability), the
gas settles into a collective precession, and entanglement then drags it along a path of
mean-field equilibria towards P_i -> Pbar_z z (lepton number is conserved). Runs long enough
(past mu t = 400) also get the miscidynamic path (physics.md section 8) seeded from the gas at
mu t = 300, drawn dashed as on the poster (`miscidynamics.py` compares the two in detail).

Writes `two_groups.png` and `two_groups.h5` into `--out`.

    python experiments/two_groups.py --out results                 # N = 1e4, mu t = 2500 (minutes)
    python experiments/two_groups.py --size smoke --out /tmp/tg     # seconds; used by the tests
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import oile_jax as oj

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SIZES = {
    # name: (N, mu t_max, dt, save every (steps), realizations)
    "smoke": (1_000, 450.0, 0.01, 300, 2),
    "default": (10_000, 2500.0, 0.01, 100, 1),
    "full": (100_000, 2500.0, 0.005, 200, 4),
}
GAMMA = 0.01
FRACTIONS = (0.6, 0.4)
OMEGAS = (0.1, 0.2)
SEED = 1e-3
PATH_START = 300.0


def make_gas(n: int) -> oj.Gas:
    counts = (round(FRACTIONS[0] * n), n - round(FRACTIONS[0] * n))
    up = [SEED, 0.0, np.sqrt(1 - SEED**2)]
    return oj.Gas(counts, OMEGAS, [up, [-x for x in up]])


def run(*, size: str, seed: int, progress: bool | None = None) -> dict:
    n, t_max, dt, save_every, realizations = SIZES[size]
    gas = make_gas(n)
    sol = oj.simulate_gas(
        gas,
        system=oj.System(gamma=GAMMA, B=oj.mixing_vector(basis="mass"), angles="fixed-velocities"),
        schedule=oj.Stochastic(dt=dt),
        sampling=oj.Sampling(
            key=jax.random.key(seed), t_max=t_max, n_realizations=realizations, dtype=jnp.float32
        ),
        saveat=oj.SaveAt(every=save_every, chunk=50),
        progress=progress,
    )
    data = {
        "ts": sol.ts,
        "group_mean": sol.group_mean.mean(0),
        "group_std": sol.group_std.mean(0),
        "group_length": sol.group_length.mean(0),
        "entropy": sol.entropy.mean(0),
        "lepton": sol.lepton,
        "encounters": sol.encounters,
        "realizations": {
            "group_mean": sol.group_mean,
            "group_std": sol.group_std,
            "group_length": sol.group_length,
            "group_entropy": sol.group_entropy,
        },
        "fractions": sol.fractions,
        "omegas": np.asarray(OMEGAS),
        "counts": np.asarray(gas.counts),
    }
    if sol.ts[-1] > PATH_START + 100:
        data["path"] = path(data["ts"], data["group_mean"])
    return data


def path(ts, group_mean) -> dict:
    """The miscidynamic path seeded from the gas's precession state at `PATH_START`."""
    _, solution = oj.path_from_gas(
        ts, group_mean, np.asarray(FRACTIONS), np.asarray(OMEGAS), start=PATH_START, gamma=GAMMA
    )
    return {k: np.asarray(getattr(solution, k)) for k in ("ts", "lengths", "Omega", "Q", "P")}


def main(argv=None) -> int:
    parser = common.parser(__doc__, SIZES)
    args = parser.parse_args(argv)
    # The miscidynamic path is solved in float64; the simulation itself stays float32.
    jax.config.update("jax_enable_x64", True)
    png, h5 = common.outputs(parser, args, "two_groups.png", "two_groups.h5")
    start = time.perf_counter()
    data = run(size=args.size, seed=args.seed)
    elapsed = time.perf_counter() - start
    n, t_max, dt, save_every, realizations = SIZES[args.size]
    config = {
        "experiment": "two_groups",
        "size": args.size,
        "seed": args.seed,
        "N": n,
        "t_max": t_max,
        "dt": dt,
        "gamma": GAMMA,
        "fractions": list(FRACTIONS),
        "omegas": list(OMEGAS),
        "seed_amplitude": SEED,
        "schedule": "stochastic",
        "angles": "fixed-velocities",
        "basis": "mass",
        "n_realizations": realizations,
    }
    oj.write_h5(h5, data, attrs={"config": config}, force=args.force)
    fig = oj.plot_two_groups(
        data, title=f"Two-group gas: N = {n}, gamma = {GAMMA}, stochastic, fixed velocities"
    )
    fig.savefig(png, dpi=130)
    lepton = data["lepton"].astype(np.float64)
    drift = np.max(np.abs(lepton - lepton[:, :1])) / np.abs(lepton[:, 0]).max()
    final = data["group_mean"][-1]
    print(
        f"mu t = {data['ts'][-1]:g}: group P_z = {np.array2string(final[:, 2], precision=4)}, "
        f"|P_perp| = {np.array2string(np.linalg.norm(final[:, :2], axis=-1), precision=4)}, "
        f"<|P_i|> = {np.array2string(data['group_length'][-1], precision=4)}"
    )
    print(
        f"{int(data['encounters'][:, -1].sum()):.3e} encounters in {elapsed:.1f} s; "
        f"lepton number drift {drift:.1e} (relative); wrote {png} and {h5}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
