"""Fitting the encounter parameter gamma of an OILE gas by gradient descent through the gas.

An "observation": the group means of a two-group gas (60% and 40%, omega = 0.1 mu and 0.2 mu in
the mass basis, both groups tilted 0.3 rad from +-z so that they precess and decohere from the
start), run by `simulate_gas` with Deterministic rounds (vacuum split) at gamma_true = 0.1, one
key. The model: `evolve_gas` at a trial gamma with another key (another encounter sequence: the
fit sees sampling noise, not its own numbers), its group means interpolated to the observed
times (a round lasts gamma / mu, so the model's times move with gamma). The loss is the mean
squared difference of every group mean component at the observed times; its gradient with
respect to log gamma is exact for Deterministic rounds at a fixed number of rounds (physics.md
section 13). L-BFGS (optax, with its zoom line search) on log gamma from gamma = 0.05.
Repeated for `K` independent observations (new keys for both): the fitted gammas' mean and
standard error against the true one. A loss scan over a gamma grid (forward runs only) for the
first observation checks that the gradient descent found the minimum.

Writes `fit_gamma.png` and `fit_gamma.h5` into `--out`.

    python experiments/fit_gamma.py --out results                 # N = 1000, K = 6 (minutes)
    python experiments/fit_gamma.py --size smoke --out /tmp/fit   # seconds; used by the tests
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import oile_jax as oj

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SIZES = {
    # name: (N, realizations, mu t_max, observed times, fits K, iterations, grid points)
    "smoke": (200, 1, 10.0, 10, 2, 8, 5),
    "default": (1_000, 2, 40.0, 30, 6, 15, 13),
    "full": (4_000, 4, 60.0, 40, 10, 20, 25),
}
GAMMA_TRUE = 0.1
GAMMA_START = 0.05
GAMMA_RANGE = (0.04, 0.25)  # the model runs t_max / GAMMA_RANGE[0] rounds
FRACTIONS = (0.6, 0.4)
OMEGAS = (0.1, 0.2)
TILT = 0.3


def make_gas(n: int) -> oj.Gas:
    counts = (round(FRACTIONS[0] * n), n - round(FRACTIONS[0] * n))
    s, c = np.sin(TILT), np.cos(TILT)
    return oj.Gas(counts, OMEGAS, [[s, 0.0, c], [0.0, s, -c]])


def observe(gas, key, realizations: int, t_max: float, n_times: int):
    """The observed group means (realization mean) at `n_times` times up to `t_max`."""
    rounds = round(t_max / GAMMA_TRUE)
    every = rounds // n_times
    sol = oj.simulate_gas(
        gas,
        system=oj.System(gamma=GAMMA_TRUE),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(
            key=key, n_steps=every * n_times, n_realizations=realizations, dtype=jnp.float64
        ),
        saveat=oj.SaveAt(every=every),
    )
    return sol.ts[1:], sol.group_mean[:, 1:].mean(axis=0)


def model_loss(gas, realizations: int, t_max: float):
    """`(loss, means)`: the model's group means `means(log_gamma, key, times)` at `times`
    (realization mean, jitted) and their mean squared difference `loss(log_gamma, key, times,
    observed)` from an observation (traced inside the fit's jitted step); the key, the times
    and the observation are arguments, so that one compilation serves every fit."""
    rounds = int(np.ceil(t_max / GAMMA_RANGE[0]))

    def means(log_gamma, key, times):
        gamma = jnp.clip(jnp.exp(log_gamma), *GAMMA_RANGE)
        run = oj.evolve_gas(
            gas,
            system=oj.System(gamma=gamma),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(
                key=key, n_steps=rounds, n_realizations=realizations, dtype=jnp.float64
            ),
            saveat=oj.SaveAt(every=1),
        )
        mean = run.group_mean.mean(axis=0)  # (saves, G, 3)
        flat = mean.reshape(mean.shape[0], -1)
        at = jax.vmap(lambda y: jnp.interp(times, run.ts, y), in_axes=1, out_axes=1)(flat)
        return at.reshape((times.shape[0],) + mean.shape[1:])

    def loss(log_gamma, key, times, observed):
        return jnp.mean((means(log_gamma, key, times) - observed) ** 2)

    return loss, jax.jit(means)


def fitter(loss):
    """`fit(model_key, times, observed, iterations)`: L-BFGS (optax, zoom line search) on log
    gamma from `GAMMA_START`; the fitted log gamma and the (gamma, loss) history. One jitted
    step serves every fit."""
    optimizer = optax.lbfgs()

    @jax.jit
    def step(log_gamma, state, key, times, observed):
        fn = lambda lg: loss(lg, key, times, observed)
        value, grad = optax.value_and_grad_from_state(fn)(log_gamma, state=state)
        updates, state = optimizer.update(
            grad, state, log_gamma, value=value, grad=grad, value_fn=fn
        )
        return optax.apply_updates(log_gamma, updates), state, value

    def fit(model_key, times, observed, iterations: int):
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts and floats
            log_gamma = jnp.asarray(np.log(GAMMA_START))
            state = optimizer.init(log_gamma)
            history = []
            for _ in range(iterations):
                gamma = float(jnp.exp(log_gamma))
                log_gamma, state, value = step(log_gamma, state, model_key, times, observed)
                history.append((gamma, float(value)))
        return log_gamma, np.asarray(history)

    return fit


def run(*, size: str, seed: int) -> dict:
    n, realizations, t_max, n_times, K, iterations, grid_points = SIZES[size]
    gas = make_gas(n)
    loss, means = model_loss(gas, realizations, t_max)
    fit = fitter(loss)
    key = jax.random.key(seed)
    gammas, histories = [], []
    for k in range(K):
        data_key, model_key = jax.random.split(jax.random.fold_in(key, k))
        times, observed = observe(gas, data_key, realizations, t_max, n_times)
        times, observed = jnp.asarray(times), jnp.asarray(observed)
        log_gamma, history = fit(model_key, times, observed, iterations)
        gammas.append(float(jnp.exp(log_gamma)))
        histories.append(history)
        if k == 0:
            first = (model_key, times, observed, np.asarray(means(log_gamma, model_key, times)))
    gammas = np.asarray(gammas)
    grid = np.geomspace(0.05, 0.2, grid_points)
    model_key, times, observed, fitted = first
    square = lambda g: (np.asarray(means(jnp.log(g), model_key, times)) - observed) ** 2
    scan = np.asarray([float(np.mean(square(g))) for g in grid])
    return {
        "gamma_true": GAMMA_TRUE,
        "gamma_fitted": gammas,
        "gamma_mean": float(gammas.mean()),
        "gamma_standard_error": float(gammas.std(ddof=1) / np.sqrt(K)) if K > 1 else np.nan,
        "history_gamma": np.stack([h[:, 0] for h in histories]),
        "history_loss": np.stack([h[:, 1] for h in histories]),
        "grid_gamma": grid,
        "grid_loss": scan,
        "times": np.asarray(times),
        "observed": np.asarray(observed),
        "fitted": fitted,
    }


def plot(data, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    t, obs, fitted = data["times"], data["observed"], data["fitted"]
    for g, color in ((0, "tab:blue"), (1, "tab:red")):
        for a, ls in ((0, "-"), (2, "--")):
            axes[0].plot(t, obs[:, g, a], "o", ms=3, color=color, alpha=0.6)
            axes[0].plot(t, fitted[:, g, a], ls, color=color, lw=1.2,
                         label=f"group {g + 1}, $P_{'xz'[a // 2]}$")  # fmt: skip
    axes[0].set(xlabel=r"$\mu t$", ylabel="group mean")
    axes[0].set_title("observation (dots) and fitted model (lines)")
    axes[0].legend(fontsize=7)
    for hg in data["history_gamma"]:
        axes[1].plot(hg, color="0.3", lw=0.9)
    axes[1].axhline(data["gamma_true"], color="crimson", lw=1, ls="--", label=r"$\gamma_{true}$")
    axes[1].set(xlabel="L-BFGS iteration", ylabel=r"$\gamma$")
    axes[1].set_title(
        rf"fits: $\gamma$ = {data['gamma_mean']:.4f} $\pm$ {data['gamma_standard_error']:.4f}"
    )
    axes[1].legend(fontsize=7)
    axes[2].semilogy(data["grid_gamma"], data["grid_loss"], "k.-", lw=1)
    axes[2].axvline(data["gamma_fitted"][0], color="tab:green", lw=1, label="gradient fit")
    axes[2].axvline(data["gamma_true"], color="crimson", lw=1, ls="--", label=r"$\gamma_{true}$")
    axes[2].set(xscale="log", xlabel=r"$\gamma$", ylabel="loss")
    axes[2].set_title("loss scan (first observation)")
    axes[2].legend(fontsize=7)
    fig.suptitle(title)
    return fig


def main(argv=None) -> int:
    parser = common.parser(__doc__, SIZES)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    png, h5 = common.outputs(parser, args, "fit_gamma.png", "fit_gamma.h5")
    start = time.perf_counter()
    data = run(size=args.size, seed=args.seed)
    elapsed = time.perf_counter() - start
    n, realizations, t_max, n_times, K, iterations, _ = SIZES[args.size]
    config = {
        "experiment": "fit_gamma",
        "size": args.size,
        "seed": args.seed,
        "N": n,
        "n_realizations": realizations,
        "t_max": t_max,
        "observed_times": n_times,
        "fits": K,
        "iterations": iterations,
        "optimizer": "optax.lbfgs (zoom line search) on log gamma",
        "gamma_start": GAMMA_START,
        "fractions": list(FRACTIONS),
        "omegas": list(OMEGAS),
        "tilt": TILT,
        "schedule": "deterministic (vacuum split)",
        "angles": "isotropic",
    }
    describe = {
        "gamma_true": ("1", "gamma of the observations", ()),
        "gamma_fitted": ("1", "gamma fitted to each observation", ("fit",)),
        "gamma_mean": ("1", "mean of the fitted gammas", ()),
        "gamma_standard_error": ("1", "standard error of the mean fitted gamma", ()),
        "history_gamma": ("1", "gamma at each L-BFGS iteration", ("fit", "iteration")),
        "history_loss": ("1", "loss at each L-BFGS iteration", ("fit", "iteration")),
        "grid_gamma": ("1", "gammas of the loss scan", ("gamma",)),
        "grid_loss": ("1", "loss of the first observation over the scan", ("gamma",)),
        "times": ("1/mu", "observed times", ("time",)),
        "observed": ("1", "first observation's group means", ("time", "group", "xyz")),
        "fitted": ("1", "fitted model's group means", ("time", "group", "xyz")),
    }
    oj.write_h5(h5, data, attrs={"config": config}, force=args.force, describe=describe)
    title = (
        f"fitting gamma: two groups, N = {n}, {realizations} realizations, deterministic, "
        f"gamma_true = {GAMMA_TRUE}"
    )
    plot(data, title).savefig(png, dpi=130)
    print(
        f"gamma_true = {GAMMA_TRUE}; fitted {data['gamma_mean']:.5f} +- "
        f"{data['gamma_standard_error']:.5f} (mean +- standard error of {K} fits: "
        f"{', '.join(f'{g:.4f}' for g in data['gamma_fitted'])}); loss-scan minimum at "
        f"{data['grid_gamma'][np.argmin(data['grid_loss'])]:.4f}; {elapsed:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
