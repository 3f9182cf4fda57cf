"""Poster, situation 1: a foreground neutrino in a uniform neutrino background.

A pure nu_e (flavour basis, P0 = (0, 0, 1)) meets fresh background neutrinos in the state
P_b = (0.6, 0, 0.6), without vacuum oscillation. gamma = 0 is the mean field (coherent
precession about P_b, |P| = 1 for ever); small gamma precesses while |P| decays slowly
(entanglement with the partners that were traced out); large gamma decoheres to P_b within a few
encounters. Stochastic schedule (OILE II), isotropic angles.

Writes `foreground.png` and `foreground.h5` into `--out`.

    python experiments/foreground.py --out results            # the default (small) size
    python experiments/foreground.py --size smoke --out /tmp   # seconds; used by the tests
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
    # name: (n_realizations, mu t_max, dt, saves)
    "smoke": (16, 4.0, 0.01, 41),
    "default": (256, 20.0, 0.005, 201),
    "full": (4096, 20.0, 0.001, 401),
}
GAMMAS = (0.0, 0.03, 1.0)
P0 = (0.0, 0.0, 1.0)
P_B = (0.6, 0.0, 0.6)


def run(*, size: str, seed: int, gammas=GAMMAS) -> dict:
    n_realizations, t_max, dt, saves = SIZES[size]
    key = jax.random.key(seed)
    data: dict = {"background": {"P_b": np.asarray(P_B), "P0": np.asarray(P0)}}
    for index, gamma in enumerate(gammas):
        if gamma == 0:
            ts = jnp.linspace(0.0, t_max, saves)
            closed = oj.foreground_mean(P0, P_B, ts, gamma=0.0)
            data["gamma_0"] = {"gamma": 0.0, "ts": ts, "closed_form": closed}
            continue
        # dt must not exceed gamma/mu (meeting probability <= 1).
        schedule = oj.Stochastic(dt=min(dt, gamma))
        save_every = max(1, round(t_max / float(schedule.dt) / (saves - 1)))
        sol = oj.simulate_foreground(
            P0,
            P_B,
            system=oj.System(gamma=gamma),
            schedule=schedule,
            sampling=oj.Sampling(
                key=jax.random.fold_in(key, index),
                n_steps=save_every * (saves - 1),
                n_realizations=n_realizations,
            ),
            saveat=oj.SaveAt(every=save_every),
        )
        data[f"gamma_{gamma:g}"] = {
            "gamma": gamma,
            "dt": float(schedule.dt),
            "ts": sol.ts,
            "mean": sol.mean,
            "stderr": sol.stderr,
            "example": sol.P[0],
            "closed_form": oj.foreground_mean(P0, P_B, sol.ts, gamma=gamma),
            # The exact ensemble mean of the schedule at this dt (the master equation is its
            # dt -> 0 limit; they differ by O(mu^2 t dt)).
            "closed_form_dt": oj.foreground_mean(P0, P_B, sol.ts, gamma=gamma, dt=schedule.dt),
            "encounters_mean": jnp.mean(sol.encounters),
        }
    return jax.tree_util.tree_map(np.asarray, data)


def main(argv=None) -> int:
    parser = common.parser(__doc__, SIZES)
    args = parser.parse_args(argv)
    png, h5 = common.outputs(parser, args, "foreground.png", "foreground.h5")
    start = time.perf_counter()
    data = run(size=args.size, seed=args.seed)
    elapsed = time.perf_counter() - start
    n_realizations, t_max, dt, saves = SIZES[args.size]
    config = {
        "experiment": "foreground",
        "size": args.size,
        "seed": args.seed,
        "gammas": list(GAMMAS),
        "P0": list(P0),
        "P_b": list(P_B),
        "n_realizations": n_realizations,
        "t_max": t_max,
        "dt": dt,
        "schedule": "stochastic",
        "angles": "isotropic",
    }
    oj.write_h5(h5, data, attrs={"config": config}, force=args.force)
    fig = oj.plot_foreground(
        data, title=f"Foreground neutrino in a uniform background (P_b = {P_B})"
    )
    fig.savefig(png, dpi=130)
    for name, group in data.items():
        if name.startswith("gamma_") and "mean" in group:
            final = group["mean"][-1]
            print(
                f"gamma={float(group['gamma']):<5g} mu t={float(group['ts'][-1]):g}: "
                f"<P> = {np.array2string(final, precision=4)} "
                f"(exact mean at dt={float(group['dt']):g}: "
                f"{np.array2string(group['closed_form_dt'][-1], precision=4)}; master equation "
                f"{np.array2string(group['closed_form'][-1], precision=4)}), "
                f"<encounters> = {float(group['encounters_mean']):.1f}"
            )
    print(f"simulated in {elapsed:.1f} s; wrote {png} and {h5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
