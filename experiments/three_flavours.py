"""The poster's two-group gas with a third flavour: a nu_e group and a nu_mu group, mean field
against OILE, three flavours against two.

Groups of 60% nu_e (omega = 0.1 mu) and 40% nu_mu (omega = 0.2 mu), `omega = |dm^2_31| / 2E`,
with the NuFIT 6.0 normal-ordering mixing in the flavour basis (physics.md section 11); gamma =
0.01, stochastic schedule (dt = 0.01), fresh isotropic angles, so that the group mean field
(`GroupField`) is the gamma -> 0 limit, with and without the O(gamma) collision term. The same
gas in two flavours (nu_e and nu_x, mixing theta_13 and the same omegas) is the comparison: there
the entanglement drives every neutrino towards one of two flavours, at most ln 2 of entropy; with
three, the large theta_23 opens the third flavour and the gas equilibrates towards ln 3.

Writes `three_flavours.png` and `three_flavours.h5` into `--out`.

    python experiments/three_flavours.py --out results        # N = 1e4, mu t = 2500 (minutes)
    python experiments/three_flavours.py --size smoke --out /tmp/tf   # seconds; in the tests
"""

import math
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
    # name: (N, mu t_max, save every (steps), realizations)
    "smoke": (1_000, 300.0, 100, 1),
    "default": (10_000, 2500.0, 250, 1),
    "full": (100_000, 2500.0, 250, 2),
}
GAMMA = 0.01
DT = 0.01
FRACTIONS = (0.6, 0.4)
OMEGAS = (0.1, 0.2)
FIT = oj.NUFIT_6_0["normal"]


def oile(n_flavours: int, *, size: str, seed: int) -> dict:
    """The gas in `n_flavours` flavours: per-group occupations, mean entropy, and `lepton`
    (`B . sum P`, which the vacuum and every encounter conserve)."""
    n, t_max, save_every, realizations = SIZES[size]
    counts = (round(FRACTIONS[0] * n), n - round(FRACTIONS[0] * n))
    if n_flavours == 3:
        P0 = jnp.stack([oj.flavour_state("e", 3), oj.flavour_state("mu", 3)])
        B = oj.pmns_vacuum("normal", "flavour")
    else:
        P0 = jnp.asarray([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
        B = oj.mixing_vector(math.radians(FIT["theta13"]), "flavour")
    sol = oj.simulate_gas(
        oj.Gas(counts, OMEGAS, P0),
        system=oj.System(gamma=GAMMA, B=B, angles="isotropic"),
        schedule=oj.Stochastic(dt=DT),
        sampling=oj.Sampling(
            key=jax.random.key(seed), t_max=t_max, n_realizations=realizations, dtype=jnp.float32
        ),
        saveat=oj.SaveAt(every=save_every, chunk=10),
    )
    return {
        "ts": sol.ts,
        "occupations": sol.occupations.mean(0),
        "group_length": sol.group_length.mean(0),
        "group_entropy": sol.group_entropy.mean(0),
        "entropy": sol.entropy.mean(0),
        "lepton": sol.lepton,
        "encounters": sol.encounters,
    }


def mean_field(collision: str, ts) -> dict:
    """The three-flavour group mean field (`collision="none"`) or mean field plus collision."""
    field = oj.GroupField(
        jnp.asarray(FRACTIONS),
        jnp.asarray(OMEGAS),
        oj.System(
            gamma=jnp.asarray(GAMMA), mu=jnp.asarray(1.0), B=oj.pmns_vacuum("normal", "flavour")
        ),
        collision=collision,
        dt=jnp.asarray(DT) if collision == "stochastic" else None,
    )
    P0 = jnp.stack([oj.flavour_state("e", 3), oj.flavour_state("mu", 3)])
    sol = oj.solve_meanfield(field, P0, jnp.asarray(ts, jnp.float64), rtol=1e-9, atol=1e-11)
    return {
        "occupations": oj.occupations(sol.P),
        "group_entropy": oj.von_neumann_entropy(sol.P),
    }


def run(*, size: str, seed: int) -> dict:
    three = oile(3, size=size, seed=seed)
    two = oile(2, size=size, seed=seed)
    ts = np.asarray(three["ts"])
    return {
        "ts": ts,
        "three_flavours": three,
        "two_flavours": two,
        "meanfield": mean_field("none", ts),
        "meanfield_collision": mean_field("stochastic", ts),
        "fractions": np.asarray(FRACTIONS),
        "omegas": np.asarray(OMEGAS),
    }


def plot(data: dict, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = np.asarray(data["ts"])
    three, two = data["three_flavours"], data["two_flavours"]
    mf, mfc = data["meanfield"], data["meanfield_collision"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    colours = ("tab:blue", "tab:orange")
    names = (r"$\nu_e$ group", r"$\nu_\mu$ group")
    for g, (colour, name) in enumerate(zip(colours, names, strict=True)):
        occ = np.asarray(three["occupations"])[:, g]
        axes[0].plot(ts, occ[:, 0], color=colour, lw=1.5, label=f"{name}, OILE")
        # The mean field plus collision on top (zorder), in black: it lies on the OILE curves.
        axes[0].plot(
            ts, np.asarray(mfc["occupations"])[:, g, 0], color="k", lw=0.8, ls=":", zorder=4
        )
        axes[0].plot(ts, np.asarray(mf["occupations"])[:, g, 0], color=colour, lw=0.5, alpha=0.35)
        axes[0].plot(ts, np.asarray(two["occupations"])[:, g, 0], color=colour, lw=1, ls="--")
        axes[1].plot(ts, occ[:, 2], color=colour, lw=1.5, label=f"{name}, OILE")
        axes[1].plot(
            ts, np.asarray(mfc["occupations"])[:, g, 2], color="k", lw=0.8, ls=":", zorder=4
        )
        axes[1].plot(ts, np.asarray(mf["occupations"])[:, g, 2], color=colour, lw=0.5, alpha=0.35)
    w = np.asarray(data["fractions"])
    axes[2].plot(ts, np.asarray(three["entropy"]), color="k", lw=1.5, label="OILE, three flavours")
    axes[2].plot(
        ts,
        np.asarray(mfc["group_entropy"]) @ w,
        color="k",
        lw=1,
        ls=":",
        label="mean field + collision",
    )
    axes[2].plot(
        ts, np.asarray(two["entropy"]), color="0.5", lw=1.2, ls="--", label="OILE, two flavours"
    )
    for value, text in ((math.log(3), r"$\ln 3$"), (math.log(2), r"$\ln 2$")):
        axes[2].axhline(value, color="crimson", lw=0.7, ls="-.")
        axes[2].text(ts[-1], value, text, ha="right", va="bottom", color="crimson", fontsize=8)
    for ax in axes[:2]:
        ax.plot([], [], color="k", lw=0.8, ls=":", label="mean field + collision")
        ax.plot([], [], color="0.4", lw=0.5, alpha=0.5, label="mean field (no collision)")
    axes[0].plot([], [], color="k", lw=1, ls="--", label="OILE, two flavours")
    axes[0].set(xlabel=r"$\mu t$", ylabel=r"$\rho_{ee}$", ylim=(0, 1))
    axes[0].set_title("electron flavour of each group")
    axes[1].set(xlabel=r"$\mu t$", ylabel=r"$\rho_{\tau\tau}$", ylim=(0, 1))
    axes[1].set_title("the third flavour")
    axes[2].set(xlabel=r"$\mu t$", ylabel=r"$-\mathrm{Tr}\,\rho \ln \rho$", ylim=(0, 1.2))
    axes[2].set_title("entropy of one neutrino (gas mean)")
    for ax in axes:
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    return fig


def main(argv=None) -> int:
    parser = common.parser(__doc__, SIZES)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # the mean field in float64; the gas in float32
    png, h5 = common.outputs(parser, args, "three_flavours.png", "three_flavours.h5")
    start = time.perf_counter()
    data = run(size=args.size, seed=args.seed)
    elapsed = time.perf_counter() - start
    n, t_max, save_every, realizations = SIZES[args.size]
    config = {
        "experiment": "three_flavours",
        "size": args.size,
        "seed": args.seed,
        "N": n,
        "t_max": t_max,
        "dt": DT,
        "gamma": GAMMA,
        "fractions": list(FRACTIONS),
        "omegas": list(OMEGAS),
        "schedule": "stochastic",
        "angles": "isotropic",
        "basis": "flavour",
        "mixing": "NuFIT 6.0, normal ordering",
        "n_realizations": realizations,
    }
    oj.write_h5(h5, data, attrs={"config": config}, force=args.force)
    title = f"nu_e and nu_mu groups: N = {n}, gamma = {GAMMA}, stochastic, isotropic, NuFIT 6.0 NO"
    plot(data, title).savefig(png, dpi=130)
    three, two = data["three_flavours"], data["two_flavours"]
    lepton = np.asarray(three["lepton"], np.float64)
    drift = np.max(np.abs(lepton - lepton[:, :1])) / np.abs(lepton[:, 0]).max()
    final = np.array2string(np.asarray(three["occupations"])[-1], precision=3)
    mfc = np.asarray(data["meanfield_collision"]["group_entropy"])[-1] @ np.asarray(FRACTIONS)
    print(
        f"mu t = {data['ts'][-1]:g}: (e, mu, tau) occupations {final}; "
        f"entropy {float(three['entropy'][-1]):.4f} (three flavours, ln 3 = {math.log(3):.4f}), "
        f"{float(two['entropy'][-1]):.4f} (two flavours, ln 2 = {math.log(2):.4f}); mean field + "
        f"collision {float(mfc):.4f}"
    )
    encounters = int(np.asarray(three["encounters"])[:, -1].sum())
    print(
        f"{encounters:.3e} three-flavour encounters; {elapsed:.1f} s in all; lepton number "
        f"B . sum P drift {drift:.1e} (relative); wrote {png} and {h5}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
