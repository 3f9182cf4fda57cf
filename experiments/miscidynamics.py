"""Poster, "miscidynamics: paths along equilibria": the simulated two-group gas against the
miscidynamic path (physics.md section 8).

The gas of `two_groups.py` (60% / 40%, omega = 0.1, 0.2, 1e-3 seed, gamma = 0.01, stochastic,
fixed velocities) is simulated (or read with `--from two_groups.h5`); once it is in its
quasi-steady precession (`--start`, default mu t = 300) its group lengths, lepton number, Q and
Omega seed `miscidynamic_path`, which is integrated to the end and compared with the simulation.

Writes `miscidynamics.png` and `miscidynamics.h5` into `--out`.

    python experiments/miscidynamics.py --out results --from results/two_groups.h5
    python experiments/miscidynamics.py --size smoke --out /tmp/md   # used by the tests
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import oile_jax as oj

# The equilibria and the path are solved to 1e-10; the simulation itself stays float32.
jax.config.update("jax_enable_x64", True)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import two_groups  # noqa: E402

SIZES = {
    # name: (N, mu t_max, mu t start, dt, save every (steps))
    "smoke": (1_000, 450.0, 300.0, 0.01, 100),
    "default": (10_000, 2500.0, 300.0, 0.01, 100),
    "full": (100_000, 2500.0, 300.0, 0.005, 200),
}
TABLE_TIMES = (500.0, 1000.0, 1500.0, 2000.0, 2500.0)


def simulate(size: str, seed: int):
    n, t_max, _, dt, save_every = SIZES[size]
    sol = oj.simulate_gas(
        two_groups.make_gas(n),
        system=oj.System(gamma=two_groups.GAMMA, angles="fixed-velocities"),
        schedule=oj.Stochastic(dt=dt),
        sampling=oj.Sampling(key=jax.random.key(seed), t_max=t_max, dtype=jnp.float32),
        saveat=oj.SaveAt(every=save_every, chunk=50),
    )
    return np.asarray(sol.ts, dtype=float), np.asarray(sol.group_mean[0], dtype=float)


def measured(ts, group_mean, fractions):
    Pbar = np.einsum("g,sgi->si", fractions, group_mean)
    phase = np.unwrap(np.arctan2(Pbar[:, 1], Pbar[:, 0]))
    return (
        np.linalg.norm(Pbar[:, :2], axis=-1),
        np.gradient(phase, ts),
        np.linalg.norm(group_mean, axis=-1),
    )


def run(*, size: str, seed: int, source: Path | None = None) -> dict:
    n, t_max, t_start, _, _ = SIZES[size]
    if source is not None:
        data, _ = oj.read_h5(source)
        ts, group_mean = (
            np.asarray(data["ts"], dtype=float),
            np.asarray(data["group_mean"], dtype=float),
        )
    else:
        ts, group_mean = simulate(size, seed)
    fractions, omegas = np.asarray(two_groups.FRACTIONS), np.asarray(two_groups.OMEGAS)
    state, path = oj.path_from_gas(
        ts, group_mean, fractions, omegas, start=t_start, gamma=two_groups.GAMMA
    )
    start = len(ts) - len(path.ts)
    f, w = jnp.asarray(fractions), jnp.asarray(omegas)
    Q, Omega, lengths = measured(ts, group_mean, fractions)
    # The family of equilibria around the path: Q over a grid of lengths (warm start from the path).
    p1 = np.linspace(
        float(path.lengths[:, 0].min()) * 0.95, float(path.lengths[:, 0].max()) * 1.05, 41
    )
    p2 = np.linspace(
        float(path.lengths[:, 1].min()) * 0.95, float(path.lengths[:, 1].max()) * 1.05, 41
    )
    grid = jnp.asarray(np.stack(np.meshgrid(p1, p2), axis=-1).reshape(-1, 2))
    guess = (path.Omega[len(path.Omega) // 2], path.Q[len(path.Q) // 2])
    family = jax.vmap(lambda l: oj.precession_equilibrium(l, f, w, state.Pz, guess=guess))(grid)
    ok = np.asarray(family.converged) & (
        np.max(np.abs(np.asarray(family.residual)), axis=-1) < 1e-9
    )
    family_Q = np.where(ok, np.asarray(family.Q), np.nan).reshape(41, 41)
    rows = []
    times = [t for t in TABLE_TIMES if ts[start] <= t <= ts[-1] + 1e-9]
    if len(times) < 2:  # short runs: five evenly spaced times after the start
        times = list(np.linspace(ts[start], ts[-1], 6)[1:])
    for t in times:
        k = int(np.argmin(np.abs(ts - t)))
        m = k - start
        rows.append(
            [
                t,
                Q[k],
                float(path.Q[m]),
                Omega[k],
                float(path.Omega[m]),
                *lengths[k],
                *np.abs(np.asarray(path.lengths[m])),
            ]
        )
    return {
        "ts": ts,
        "group_mean": group_mean,
        "Q": Q,
        "Omega": Omega,
        "lengths": lengths,
        "path": {
            "ts": np.asarray(path.ts),
            "lengths": np.asarray(path.lengths),
            "Omega": np.asarray(path.Omega),
            "Q": np.asarray(path.Q),
            "P": np.asarray(path.P),
        },
        "start": float(ts[start]),
        "N": n,
        "family": {"p1": p1, "p2": p2, "Q": family_Q},
        "table": np.asarray(rows).reshape(-1, 9),
        "endpoint_Omega": float(oj.endpoint_frequency(f, w, state.Pz, guess=float(path.Omega[-1]))),
    }


def plot(data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts, path = data["ts"], data["path"]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5), constrained_layout=True)
    colours = ("tab:blue", "tab:orange")
    for g in range(2):
        axes[0].plot(
            ts,
            data["group_mean"][:, g, 2],
            color=colours[g],
            lw=1,
            label=f"group {g + 1}, simulation",
        )
        axes[0].plot(path["ts"], path["P"][:, g, 2], color="k", lw=1, ls="--")
    axes[0].plot([], [], color="k", ls="--", label="miscidynamic path")
    axes[0].set(xlabel=r"$\mu t$", ylabel=r"$\langle P_z \rangle$ (mass basis)")
    axes[1].plot(ts, data["Q"], color="tab:green", lw=1, label="simulation")
    axes[1].plot(path["ts"], path["Q"], color="k", ls="--", label="miscidynamics")
    axes[1].set(xlabel=r"$\mu t$", ylabel=r"$Q = |\bar{P}_\perp|$", ylim=(0, None))
    inside = ts >= data["start"] - 50
    axes[2].plot(
        ts[inside],
        data["Omega"][inside],
        color="tab:green",
        lw=1,
        label="simulation (phase of $\\bar P_\\perp$)",
    )
    axes[2].plot(path["ts"], path["Omega"], color="k", ls="--", label="miscidynamics")
    axes[2].axhline(data["endpoint_Omega"], color="0.5", ls=":", label="endpoint frequency")
    axes[2].set(xlabel=r"$\mu t$", ylabel=r"$\Omega / \mu$")
    fam = data["family"]
    image = axes[3].contourf(fam["p1"], fam["p2"], fam["Q"], levels=20, cmap="viridis")
    fig.colorbar(image, ax=axes[3], label="Q of the equilibrium")
    axes[3].plot(
        np.abs(path["lengths"][:, 0]), np.abs(path["lengths"][:, 1]), color="w", lw=2, label="path"
    )
    k = ts >= data["start"]
    axes[3].plot(
        data["lengths"][k, 0], data["lengths"][k, 1], color="r", lw=1, ls=":", label="simulation"
    )
    axes[3].set(xlabel="|P| group 1", ylabel="|P| group 2")
    axes[3].set_title("the path through the family of equilibria")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Two-group gas, N = {int(data['N'])}, gamma = {two_groups.GAMMA}: "
        f"path from mu t = {data['start']:g}"
    )
    return fig


def main(argv=None) -> int:
    parser = common.parser(__doc__, SIZES)
    parser.add_argument(
        "--from", dest="source", type=Path, help="read the simulation from a two_groups.h5"
    )
    args = parser.parse_args(argv)
    png, h5 = common.outputs(parser, args, "miscidynamics.png", "miscidynamics.h5")
    start = time.perf_counter()
    data = run(size=args.size, seed=args.seed, source=args.source)
    elapsed = time.perf_counter() - start
    config = {
        "experiment": "miscidynamics",
        "size": args.size,
        "seed": args.seed,
        "source": str(args.source) if args.source else None,
    }
    describe = {
        "lengths": ("1", "signed group lengths of the gas", ("save", "group")),
        "start": ("1/mu", "time at which the path is seeded from the gas", ()),
        "endpoint_Omega": ("mu", "precession frequency at the end of the path (Q -> 0)", ()),
        "family/p1": ("1", "length of group 1 on the grid of the family", ("p1",)),
        "family/p2": ("1", "length of group 2 on the grid of the family", ("p2",)),
        "family/Q": ("1", "|Pbar_perp| of the equilibrium at (p1, p2)", ("p2", "p1")),
        "table": (
            "mixed",
            "gas against path: t, Q gas, Q path, Omega gas, Omega path, |p1| gas, |p2| gas, "
            "|p1| path, |p2| path",
            ("row", "column"),
        ),
    }
    oj.write_h5(h5, data, attrs={"config": config}, force=args.force, describe=describe)
    plot(data).savefig(png, dpi=130)
    print(
        f"{'mu t':>6}{'Q sim':>9}{'Q path':>9}{'dQ/Q':>8}"
        f"{'Omega sim':>11}{'Omega path':>11}{'dO/O':>9}"
        f"{'p1 sim':>8}{'p1 path':>9}{'p2 sim':>8}{'p2 path':>9}"
    )
    for t, qs, qp, os_, op, l1, l2, m1, m2 in data["table"]:
        print(
            f"{t:>6.0f}{qs:>9.4f}{qp:>9.4f}{(qp - qs) / qs:>8.3f}"
            f"{os_:>11.5f}{op:>11.5f}{(op - os_) / os_:>9.4f}"
            f"{l1:>8.4f}{m1:>9.4f}{l2:>8.4f}{m2:>9.4f}"
        )
    print(
        f"endpoint frequency {data['endpoint_Omega']:.5f}; "
        f"ran in {elapsed:.1f} s; wrote {png} and {h5}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
