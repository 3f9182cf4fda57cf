"""The collisional flavour instability in the OILE gas as gamma -> 0 (physics.md section 14).

A gas of 55% nu_e and 45% nubar_e, isotropic, whose electron flavours the medium absorbs and at
once re-emits at the rates 1.0 and 0.1 (`Reemission`; the x flavour is not absorbed), seeded by a
tilt of 1e-6 (float64). For each gamma: the OILE gas (stochastic schedule at `p = 1`,
`dt = gamma / mu`, each realization's growth rate the slope of `log |P_perp|` of the nu_e group
over `15 < mu t < 50`), the mean field with `Reemission` and OILE's collision term (the gas's
prediction to first order in gamma), and `linear_stability` of the mean field (the gamma -> 0
rate). Writes `collisional_instability.png` and `collisional_instability.h5` into `--out`.

    python experiments/collisional_instability.py --out results
    python experiments/collisional_instability.py --size smoke --out /tmp/ci    # in the tests
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

jax.config.update("jax_enable_x64", True)

SIZES = {
    # name: (counts, gammas, realizations)
    "smoke": ((110, 90), (0.008, 0.004), 4),
    "default": ((220, 180), (0.004, 0.002, 0.001), 4),
    "full": ((1100, 900), (0.004, 0.002, 0.001, 0.0005), 8),
}
T_MAX, SAVE_EVERY_T, WINDOW = 60.0, 2.0, (15.0, 50.0)
SEED_TILT = 1e-6
OMEGA = 0.01


def system(gamma):
    ops = oj.Reemission([[1.0, 0.0], [0.1, 0.0]], [[1.0, 0.0], [1.0, 0.0]])
    return oj.System(gamma=gamma, mu=1.0, B=oj.mixing_vector(0.0), opacities=ops)


def field(gamma, collision, n):
    return oj.GroupField(
        jnp.array([0.55, 0.45]), jnp.array([OMEGA, OMEGA]), system(gamma), collision=collision,
        n=n, antineutrino=np.array([False, True]),
    )  # fmt: skip


def growth(ts, P):
    """Slopes of `log |P_perp|` of the nu_e group over `WINDOW` (`P` `(..., T, G, 3)`)."""
    window = (ts > WINDOW[0]) & (ts < WINDOW[1])
    perp = np.hypot(P[..., 0, 0], P[..., 0, 1])
    return np.polyfit(ts[window], np.log(perp[..., window].T), 1)[0]


def run(size: str = "default", seed: int = 0) -> dict:
    counts, gammas, realizations = SIZES[size]
    n = sum(counts)
    P0 = jnp.array([[SEED_TILT, 0.0, np.sqrt(1 - SEED_TILT**2)]] * 2)
    gas = oj.Gas(counts, jnp.array([OMEGA, OMEGA]), P0, antineutrino=np.array([False, True]))
    flavour = jnp.array([[0.0, 0.0, 1.0]] * 2)
    limit = float(oj.linear_stability(field(0.001, "none", n), flavour).growth_rate)
    data = {"gammas": np.asarray(gammas), "limit": limit, "counts": np.asarray(counts)}
    for gamma in gammas:
        dt = gamma  # p = mu dt / gamma = 1
        every = round(SAVE_EVERY_T / dt)
        sampling = oj.Sampling(
            jax.random.key(seed), n_steps=round(T_MAX / dt), n_realizations=realizations,
            dtype=jnp.float64,
        )  # fmt: skip
        sol = oj.simulate_gas(gas, system(gamma), oj.Stochastic(dt=dt), sampling,
                              saveat=oj.SaveAt(every=every))  # fmt: skip
        ts = np.asarray(sol.ts)
        oile = np.asarray(sol.group_mean)
        mf = {c: np.asarray(oj.solve_meanfield(field(gamma, c, n), P0, jnp.asarray(ts)).P)
              for c in ("none", "stochastic")}  # fmt: skip
        rates = growth(ts, oile)
        data[f"gamma_{gamma:g}"] = {
            "ts": ts,
            "oile": oile,
            "mean_field": mf["none"],
            "mean_field_collision": mf["stochastic"],
            "rates": rates,
            "rate": float(rates.mean()),
            "rate_error": float(rates.std(ddof=1) / np.sqrt(rates.size)),
            "rate_mean_field": float(growth(ts, mf["none"])),
            "rate_mean_field_collision": float(growth(ts, mf["stochastic"])),
        }
    return data


def plot(data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gammas = data["gammas"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for g in gammas:
        d = data[f"gamma_{g:g}"]
        perp = np.hypot(d["oile"][..., 0, 0], d["oile"][..., 0, 1]).mean(0)
        left.semilogy(d["ts"], perp, "o", ms=3, label=f"OILE, gamma = {g:g}")
        left.semilogy(d["ts"], np.hypot(*d["mean_field_collision"][:, 0, :2].T), lw=0.8)
    d = data[f"gamma_{gammas[-1]:g}"]
    left.semilogy(d["ts"], np.hypot(*d["mean_field"][:, 0, :2].T), "k--", label="mean field")
    left.set(xlabel="mu t", ylabel="|P_perp| of nu_e", title="growth (lines: MF + collision)")
    left.legend(fontsize=7)
    rates = [data[f"gamma_{g:g}"]["rate"] for g in gammas]
    errors = [data[f"gamma_{g:g}"]["rate_error"] for g in gammas]
    predicted = [data[f"gamma_{g:g}"]["rate_mean_field_collision"] for g in gammas]
    right.errorbar(gammas, rates, yerr=errors, fmt="o", label="OILE gas")
    right.plot(gammas, predicted, "x", label="mean field + collision term")
    right.axhline(data["limit"], color="k", ls="--", label="linear_stability (gamma -> 0)")
    right.set(xscale="log", xlabel="gamma", ylabel="growth rate", title="the rate as gamma -> 0")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    parser = common.parser(__doc__, SIZES)
    args = parser.parse_args(argv)
    png, h5 = common.outputs(
        parser, args, "collisional_instability.png", "collisional_instability.h5"
    )
    start = time.perf_counter()
    data = run(size=args.size, seed=args.seed)
    elapsed = time.perf_counter() - start
    counts, gammas, realizations = SIZES[args.size]
    config = {"experiment": "collisional_instability", "size": args.size, "seed": args.seed,
              "counts": list(counts), "gammas": list(gammas), "realizations": realizations,
              "window": list(WINDOW), "seed_tilt": SEED_TILT}  # fmt: skip
    runs = ("realization", "save", "group", "xyz")
    describe = {
        "gammas": ("1", "impact parameters of the runs", ("gamma",)),
        "limit": ("mu", "linear_stability's growth rate of the mean field (gamma -> 0)", ()),
        "counts": ("1", "neutrinos per group (nu_e, nubar_e)", ("group",)),
        "ts": ("1/mu", "save times", ("save",)),
        "oile": ("1", "group means of the OILE gas (isospins)", runs),
        "mean_field": ("1", "group states of the mean field", runs[1:]),
        "mean_field_collision": ("1", "group states of the mean field plus collision", runs[1:]),
        "rates": ("mu", "each realization's growth rate over the window", ("realization",)),
        "rate": ("mu", "the realizations' mean growth rate", ()),
        "rate_error": ("mu", "its standard error", ()),
        "rate_mean_field": ("mu", "the mean field's growth rate over the window", ()),
        "rate_mean_field_collision": ("mu", "the mean field plus collision's growth rate", ()),
    }
    oj.write_h5(h5, data, attrs={"config": config}, force=args.force, describe=describe)
    plot(data).savefig(png, dpi=130)
    print(f"linear_stability (gamma -> 0): {data['limit']:.5f}")
    print(f"{'gamma':>8}{'OILE':>10}{'+/-':>9}{'MF + collision':>16}{'mean field':>12}")
    for g in gammas:
        d = data[f"gamma_{g:g}"]
        print(f"{g:>8g}{d['rate']:>10.5f}{d['rate_error']:>9.5f}"
              f"{d['rate_mean_field_collision']:>16.5f}{d['rate_mean_field']:>12.5f}")  # fmt: skip
    print(f"{elapsed:.0f} s; wrote {png} and {h5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
