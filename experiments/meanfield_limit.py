"""The OILE -> mean-field limit, measured on the two-group gas (poster, situation 2).

For each gamma: OILE realizations (stochastic schedule with p = 1/2, fixed velocities), and for
each realization, with its own velocities, the multi-angle mean field (`collision="none"`) and
the mean field plus the O(gamma) collision term (`collision="stochastic"`), solved with diffrax.
Distance: the largest difference of a group's mean Bloch vector over the window
`mu t <= T`, averaged over realizations; measured over a fixed window and over the window
`mu t <= 1/(mu gamma)`.

Writes `meanfield_limit.png` and `meanfield_limit.h5` into `--out`.

    python experiments/meanfield_limit.py --out results
    python experiments/meanfield_limit.py --size smoke --out /tmp/ml    # used by the tests
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
import two_groups  # noqa: E402

SIZES = {
    # name: (N, gammas, realizations, fixed window mu t, saves per unit mu t)
    "smoke": (1_000, (0.08, 0.04, 0.02), 2, 10.0, 2),
    "default": (10_000, (0.04, 0.02, 0.01, 0.005), 2, 10.0, 2),
    "full": (100_000, (0.04, 0.02, 0.01, 0.005, 0.0025), 4, 10.0, 2),
}
P_MEET = 0.5


def run_gamma(gas, gamma, *, realizations, t_max, per_unit, key):
    dt = P_MEET * gamma
    save_every = max(1, round(1 / (per_unit * dt)))
    sol = oj.simulate_gas(
        gas,
        system=oj.System(gamma=gamma, B=oj.mixing_vector(basis="mass"), angles="fixed-velocities"),
        schedule=oj.Stochastic(dt=dt),
        sampling=oj.Sampling(
            key=key,
            t_max=t_max,
            n_realizations=realizations,
            dtype=jnp.float64 if jax.config.jax_enable_x64 else jnp.float32,
        ),
        saveat=oj.SaveAt(every=save_every),
    )
    ts = jnp.asarray(sol.ts, dtype=jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    omegas = jnp.repeat(
        jnp.asarray(two_groups.OMEGAS, ts.dtype), np.asarray(gas.counts), total_repeat_length=gas.n
    )
    P0 = gas.initial_state(ts.dtype)
    solutions = {}
    for collision in ("none", "stochastic"):

        def solve(v, collision=collision):
            field = oj.MultiAngleField(
                omegas,
                v,
                oj.System(
                    gamma=jnp.asarray(gamma, ts.dtype),
                    mu=jnp.asarray(1.0, ts.dtype),
                    B=jnp.asarray([0.0, 0.0, -1.0], ts.dtype),
                ),
                collision=collision,
                dt=jnp.asarray(P_MEET * gamma, ts.dtype) if collision == "stochastic" else None,
            )
            return oj.solve_meanfield(field, P0, ts, rtol=1e-7, atol=1e-9).P

        P = jax.jit(jax.vmap(solve))(jnp.asarray(sol.velocities, ts.dtype))
        solutions[collision] = common.group_means(np.asarray(P), gas.counts)
    return sol, solutions


def distances(ts, oile, reference, t_window):
    """Largest group-mean difference over mu t <= t_window, per realization, averaged."""
    inside = ts <= t_window + 1e-9
    diff = np.linalg.norm(oile[:, inside] - reference[:, inside], axis=-1)  # (R, S, G)
    return float(diff.max(axis=(1, 2)).mean())


def run(*, size: str, seed: int) -> dict:
    n, gammas, realizations, window, per_unit = SIZES[size]
    gas = two_groups.make_gas(n)
    key = jax.random.key(seed)
    data: dict = {"gammas": np.asarray(gammas), "window": window}
    for k, gamma in enumerate(gammas):
        t_max = max(window, 1.0 / gamma)
        sol, mf = run_gamma(
            gas,
            gamma,
            realizations=realizations,
            t_max=t_max,
            per_unit=per_unit,
            key=jax.random.fold_in(key, k),
        )
        ts = np.asarray(sol.ts, dtype=float)
        data[f"gamma_{gamma:g}"] = {
            "gamma": gamma,
            "ts": ts,
            "oile": sol.group_mean,
            "mean_field": mf["none"],
            "mean_field_collision": mf["stochastic"],
            "distance_mf_window": distances(ts, sol.group_mean, mf["none"], window),
            "distance_mfc_window": distances(ts, sol.group_mean, mf["stochastic"], window),
            "distance_mf_long": distances(ts, sol.group_mean, mf["none"], 1.0 / gamma),
            "distance_mfc_long": distances(ts, sol.group_mean, mf["stochastic"], 1.0 / gamma),
        }
    for name in ("mf_window", "mfc_window", "mf_long", "mfc_long"):
        values = np.asarray([data[f"gamma_{g:g}"][f"distance_{name}"] for g in gammas])
        data[f"order_{name}"] = float(np.polyfit(np.log(gammas), np.log(values), 1)[0])
    return data


def plot(data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gammas = np.asarray(data["gammas"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), constrained_layout=True)
    for name, label, style in (
        ("mf_window", rf"mean field, $\mu t \leq {data['window']:g}$", "o-"),
        ("mfc_window", rf"mean field + collision, $\mu t \leq {data['window']:g}$", "s-"),
        ("mf_long", r"mean field, $\mu t \leq 1/(\mu\gamma)$", "o--"),
        ("mfc_long", r"mean field + collision, $\mu t \leq 1/(\mu\gamma)$", "s--"),
    ):
        values = [data[f"gamma_{g:g}"][f"distance_{name}"] for g in gammas]
        axes[0].loglog(gammas, values, style, label=f"{label} (order {data[f'order_{name}']:.2f})")
    axes[0].set(xlabel=r"$\gamma$", ylabel="max |group mean: OILE - ODE|")
    axes[0].legend(fontsize=7)
    axes[0].set_title("distance to OILE (mean over realizations)")
    smallest = data[f"gamma_{gammas[-1]:g}"]
    ts = smallest["ts"]
    for ax, g in zip(axes[1:], range(2), strict=True):
        ax.plot(ts, smallest["oile"][0, :, g, 2], color="k", lw=1.2, label="OILE (one realization)")
        ax.plot(
            ts,
            smallest["mean_field"][0, :, g, 2],
            color="tab:blue",
            lw=1,
            ls="--",
            label="mean field",
        )
        ax.plot(
            ts,
            smallest["mean_field_collision"][0, :, g, 2],
            color="tab:red",
            lw=1,
            ls=":",
            label="mean field + collision",
        )
        ax.set(xlabel=r"$\mu t$", ylabel=rf"$\langle P_z\rangle$ of group {g + 1}")
        ax.set_title(rf"$\gamma = {gammas[-1]:g}$")
        ax.legend(fontsize=7)
    return fig


def main(argv=None) -> int:
    parser = common.parser(__doc__, SIZES)
    args = parser.parse_args(argv)
    png, h5 = common.outputs(parser, args, "meanfield_limit.png", "meanfield_limit.h5")
    start = time.perf_counter()
    data = run(size=args.size, seed=args.seed)
    elapsed = time.perf_counter() - start
    n, gammas, realizations, window, per_unit = SIZES[args.size]
    config = {
        "experiment": "meanfield_limit",
        "size": args.size,
        "seed": args.seed,
        "N": n,
        "gammas": list(gammas),
        "realizations": realizations,
        "window": window,
        "p": P_MEET,
    }
    groups = ("realization", "save", "group", "xyz")
    describe = {
        "gammas": ("1", "impact parameters of the runs", ("gamma",)),
        "oile": ("1", "group means of the OILE gas", groups),
        "window": ("1/mu", "early window over which distances are taken", ()),
        "mean_field": ("1", "group means of the mean field", groups),
        "mean_field_collision": ("1", "group means of the mean field plus collision", groups),
    }
    for which, text in (("mf", "the mean field"), ("mfc", "the mean field plus collision")):
        for span, over in (("window", "the early window"), ("long", "mu t <= 1/gamma")):
            describe[f"distance_{which}_{span}"] = (
                "1",
                f"largest |group mean - {text}| over {over}",
                (),
            )
            describe[f"order_{which}_{span}"] = (
                "1",
                f"fitted order in gamma of the distance to {text} over {over}",
                (),
            )
    oj.write_h5(h5, data, attrs={"config": config}, force=args.force, describe=describe)
    plot(data).savefig(png, dpi=130)
    print(
        f"{'gamma':>8}{'MF, fixed':>12}{'MF+C, fixed':>13}{'MF, 1/gamma':>13}{'MF+C, 1/gamma':>15}"
    )
    for g in gammas:
        d = data[f"gamma_{g:g}"]
        print(
            f"{g:>8g}{d['distance_mf_window']:>12.4f}{d['distance_mfc_window']:>13.4f}"
            f"{d['distance_mf_long']:>13.4f}{d['distance_mfc_long']:>15.4f}"
        )
    print(
        "fitted orders: "
        + ", ".join(f"{k[6:]} {v:.2f}" for k, v in data.items() if k.startswith("order_"))
    )
    print(f"ran in {elapsed:.1f} s; wrote {png} and {h5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
