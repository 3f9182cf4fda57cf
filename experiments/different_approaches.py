"""Poster, "different approaches": mean field vs OILE vs exact many-body, on one figure.

A small two-group gas (N = 12: half nearly +z with omega = 0.1 mu, half nearly -z with
omega = 0.2 mu, mass basis, a 0.1 transverse seed), isotropic angles, deterministic schedule.
- mean field: `GroupField` (the isotropic mean field of N neutrinos), and mean field plus the
  collision term of the deterministic schedule;
- OILE: the ensemble mean of `simulate_manybody`'s OILE side;
- exact: the same encounters applied to the 2^N state vector (no tracing out).
Second part: the difference between the exact and the OILE one-body states at mu t = 5 (mean
over neutrinos and realizations) against gamma and N.

Writes `different_approaches.png` and `different_approaches.h5` into `--out`.

    python experiments/different_approaches.py --out results
    python experiments/different_approaches.py --size smoke --out /tmp/da   # used by the tests
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
    # name: (N, gamma, mu t_max, realizations, scan Ns, scan gammas, scan realizations)
    "smoke": (8, 0.2, 10.0, 8, (4, 8), (0.4,), 4),
    "default": (12, 0.1, 40.0, 64, (4, 6, 8, 10, 12, 14), (0.05, 0.1, 0.2, 0.4), 16),
    "full": (16, 0.05, 60.0, 64, (4, 6, 8, 10, 12, 14, 16, 18), (0.025, 0.05, 0.1, 0.2, 0.4), 32),
}
OMEGAS = (0.1, 0.2)
SEED = 0.1
T_SCAN = 5.0


def two_groups(n):
    up = [SEED, 0.0, np.sqrt(1 - SEED**2)]
    return oj.Gas((n // 2, n - n // 2), OMEGAS, [up, [-x for x in up]])


def run(*, size: str, seed: int) -> dict:
    n, gamma, t_max, R, scan_n, scan_gamma, scan_R = SIZES[size]
    key = jax.random.key(seed)
    gas = two_groups(n)
    B = oj.mixing_vector(basis="mass")
    rounds = round(t_max / gamma)
    every = max(1, rounds // 200)
    sol = oj.simulate_manybody(
        gas,
        system=oj.System(gamma=gamma, B=B),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(key=key, n_steps=every * (rounds // every), n_realizations=R),
        saveat=oj.SaveAt(every=every),
    )
    ts = np.asarray(sol.ts)
    fractions = jnp.asarray(np.asarray(gas.counts) / n)
    fields = {
        name: oj.GroupField(
            fractions,
            jnp.asarray(OMEGAS, ts.dtype),
            oj.System(
                gamma=jnp.asarray(gamma, ts.dtype),
                mu=jnp.asarray(1.0, ts.dtype),
                B=jnp.asarray(B, ts.dtype),
            ),
            collision=option,
            n=n,
        )
        for name, option in (("mean_field", "none"), ("mean_field_collision", "deterministic"))
    }
    P0 = jnp.asarray(np.asarray(gas.P0), ts.dtype)
    data: dict = {
        "ts": ts,
        "exact": common.group_means(np.asarray(sol.exact), gas.counts).mean(0),
        "oile": common.group_means(np.asarray(sol.oile), gas.counts).mean(0),
        "exact_entropy": np.asarray(sol.exact_entropy).mean(axis=(0, 2)),
        "oile_entropy": np.asarray(sol.oile_entropy).mean(axis=(0, 2)),
        "N": n,
        "gamma": gamma,
    }
    for name, field in fields.items():
        data[name] = np.asarray(oj.solve_meanfield(field, P0, jnp.asarray(ts)).P)
    # Exact vs OILE against gamma and N at mu t = T_SCAN.
    diff = np.zeros((len(scan_n), len(scan_gamma)))
    for a, m in enumerate(scan_n):
        for b, g in enumerate(scan_gamma):
            steps = max(1, round(T_SCAN / g))
            s = oj.simulate_manybody(
                two_groups(m),
                system=oj.System(gamma=g, B=B),
                schedule=oj.Deterministic(),
                sampling=oj.Sampling(
                    key=jax.random.fold_in(key, 1000 * a + b), n_steps=steps, n_realizations=scan_R
                ),
                saveat=oj.SaveAt(every=steps),
            )
            diff[a, b] = float(
                np.mean(np.linalg.norm(np.asarray(s.exact[:, -1] - s.oile[:, -1]), axis=-1))
            )
    data["scan"] = {
        "N": np.asarray(scan_n),
        "gamma": np.asarray(scan_gamma),
        "difference": diff,
        "t": T_SCAN,
    }
    return data


def plot(data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = data["ts"]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.5), constrained_layout=True)
    styles = (
        ("mean_field", "mean field", "tab:blue", "--"),
        ("mean_field_collision", "mean field + collision", "tab:red", ":"),
        ("oile", "OILE (ensemble mean)", "k", "-"),
        ("exact", "exact many-body (ensemble mean)", "tab:green", "-"),
    )
    for g in range(2):
        for name, label, colour, ls in styles:
            axes[g].plot(ts, data[name][:, g, 2], color=colour, ls=ls, lw=1.3, label=label)
        axes[g].set(
            xlabel=r"$\mu t$",
            ylabel=rf"$\langle P_z\rangle$, group {g + 1} ($\omega = {OMEGAS[g]}\,\mu$)",
        )
        axes[g].legend(fontsize=7)
    axes[0].set_title(
        rf"N = {int(data['N'])}, $\gamma = {float(data['gamma']):g}$, deterministic schedule"
    )
    axes[2].plot(ts, data["oile_entropy"], color="k", label="OILE")
    axes[2].plot(ts, data["exact_entropy"], color="tab:green", label="exact many-body")
    axes[2].axhline(np.log(2), color="0.6", lw=0.8, ls=":")
    axes[2].set(xlabel=r"$\mu t$", ylabel="mean one-neutrino entropy (nats)")
    axes[2].legend(fontsize=7)
    scan = data["scan"]
    for b, g in enumerate(scan["gamma"]):
        axes[3].plot(scan["N"], scan["difference"][:, b], "o-", label=rf"$\gamma = {g:g}$")
    axes[3].set(
        xlabel="N",
        ylabel=rf"mean $|P^{{exact}} - P^{{OILE}}|$ at $\mu t = {float(scan['t']):g}$",
        yscale="log",
    )
    axes[3].set_title("exact vs OILE, same encounters")
    axes[3].legend(fontsize=7)
    return fig


def main(argv=None) -> int:
    parser = common.parser(__doc__, SIZES)
    args = parser.parse_args(argv)
    png, h5 = common.outputs(parser, args, "different_approaches.png", "different_approaches.h5")
    start = time.perf_counter()
    data = run(size=args.size, seed=args.seed)
    elapsed = time.perf_counter() - start
    oj.write_h5(
        h5,
        data,
        attrs={
            "config": {"experiment": "different_approaches", "size": args.size, "seed": args.seed}
        },
        force=args.force,
        describe={
            "exact": ("1", "group means of the exact many-body state", ("save", "group", "xyz")),
            "oile": ("1", "group means of OILE on the same encounters", ("save", "group", "xyz")),
            "mean_field": ("1", "group vectors of the mean field", ("save", "group", "xyz")),
            "mean_field_collision": (
                "1",
                "group vectors of the mean field plus collision term",
                ("save", "group", "xyz"),
            ),
        },
    )
    plot(data).savefig(png, dpi=130)
    scan = data["scan"]
    print(
        f"exact vs OILE at mu t = {float(scan['t']):g} (mean |dP|), "
        f"rows N = {scan['N'].tolist()}, columns gamma = {scan['gamma'].tolist()}:"
    )
    print(np.array2string(scan["difference"], precision=4))
    print(
        f"final entropies: exact {data['exact_entropy'][-1]:.4f}, "
        f"OILE {data['oile_entropy'][-1]:.4f} (ln 2 = {np.log(2):.4f})"
    )
    print(f"ran in {elapsed:.1f} s; wrote {png} and {h5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
