"""Figures. Each function takes the nested data written to (and read back from) HDF5, so the
same picture comes from a fresh run or from a file. matplotlib is imported on first use.
"""

from collections.abc import Mapping

import numpy as np


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_foreground(data: Mapping, *, title: str | None = None):
    """The poster's situation-1 figure from `experiments/foreground.py` data.

    `data` maps run names to groups with `gamma`, `ts`, `mean`, `stderr`, `example` (one
    realization), `closed_form` (the master equation, `foreground_mean`) and optionally
    `closed_form_dt` (the exact mean of the schedule at the run's `dt`; both only for isotropic
    angles), and has a `background`
    group with `P_b`. Panels: the Bloch-vector trajectories in 3D; `|P|` against `mu t`; the
    component along `P_b`, with the master equation dashed and the schedule's exact mean dotted.
    Returns the matplotlib figure.
    """
    plt = _pyplot()
    P_b = np.asarray(data["background"]["P_b"])
    b_hat = P_b / np.linalg.norm(P_b)
    runs = sorted(
        (v for k, v in data.items() if k != "background"), key=lambda r: float(r["gamma"])
    )
    fig = plt.figure(figsize=(15, 4.8), constrained_layout=True)
    ax3d = fig.add_subplot(1, 3, 1, projection="3d")
    ax_norm = fig.add_subplot(1, 3, 2)
    ax_par = fig.add_subplot(1, 3, 3)
    colours = plt.cm.viridis(np.linspace(0.0, 0.85, len(runs)))

    for run, colour in zip(runs, colours, strict=True):
        gamma = float(run["gamma"])
        ts = np.asarray(run["ts"])
        closed = np.asarray(run["closed_form"]) if "closed_form" in run else None
        if gamma == 0:
            label = r"$\gamma = 0$ (mean field)"
            ax3d.plot(*closed.T, color=colour, lw=1.5, label=label)
            ax_norm.plot(ts, np.linalg.norm(closed, axis=-1), color=colour, lw=1.5, label=label)
            ax_par.plot(ts, closed @ b_hat, color=colour, lw=1.5, label=label)
            continue
        label = rf"$\gamma = {gamma:g}$"
        example = np.asarray(run["example"])
        mean = np.asarray(run["mean"])
        stderr = np.asarray(run["stderr"])
        ax3d.plot(*example.T, color=colour, lw=0.8, alpha=0.9, label=f"{label}, one realization")
        ax_norm.plot(ts, np.linalg.norm(example, axis=-1), color=colour, lw=0.8, alpha=0.6)
        ax_norm.plot(
            ts,
            np.linalg.norm(mean, axis=-1),
            color=colour,
            lw=1.5,
            label=f"{label}, |ensemble mean|",
        )
        par, err = mean @ b_hat, np.sqrt((stderr**2) @ (b_hat**2))
        ax_par.fill_between(ts, par - 2 * err, par + 2 * err, color=colour, alpha=0.25, lw=0)
        ax_par.plot(ts, par, color=colour, lw=1.5, label=f"{label}, simulation")
        # The references on top of the simulation (zorder), so that they stay visible.
        if closed is not None:
            ax_par.plot(ts, closed @ b_hat, color="k", lw=0.9, ls="--", zorder=4)
        if "closed_form_dt" in run:
            dt_mean = np.asarray(run["closed_form_dt"]) @ b_hat
            ax_par.plot(ts, dt_mean, color="0.5", lw=0.9, ls=":", zorder=5)

    ax3d.scatter(*P_b, color="crimson", s=40, label=r"$\mathbf{P}_b$")
    ax3d.set(
        xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1), xlabel="$P_x$", ylabel="$P_y$", zlabel="$P_z$"
    )
    ax3d.set_box_aspect((1, 1, 1))
    for axis in (ax3d.xaxis, ax3d.yaxis, ax3d.zaxis):
        axis.set_ticks([-1, 0, 1])
    ax3d.tick_params(labelsize=7, pad=0)
    ax3d.legend(fontsize=7, loc="upper left")
    ax3d.set_title("Bloch vector of the foreground neutrino")
    ax_norm.set(xlabel=r"$\mu t$", ylabel=r"$|\mathbf{P}|$", ylim=(0, 1.05))
    ax_norm.set_title("coherence: thin = one realization")
    ax_norm.legend(fontsize=7)
    ax_par.plot([], [], color="k", lw=0.8, ls="--", label=r"master equation ($dt \to 0$)")
    if any("closed_form_dt" in run for run in runs):
        ax_par.plot([], [], color="0.5", lw=0.9, ls=":", label="exact mean at the run's dt")
    ax_par.axhline(
        np.linalg.norm(P_b), color="crimson", lw=0.8, ls="-.", label=r"$|\mathbf{P}_b|$ (relaxed)"
    )
    ax_par.set(xlabel=r"$\mu t$", ylabel=r"$\mathbf{P}\cdot\hat{\mathbf{P}}_b$")
    ax_par.set_title(r"ensemble mean along $\mathbf{P}_b$ ($\pm 2$ s.e.)")
    ax_par.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_two_groups(data: Mapping, *, title: str | None = None):
    """The poster's situation-2 figure from `experiments/two_groups.py` data.

    `data` has `ts` `(S,)`, `group_mean`, `group_std` `(S, G, 3)` (one realization, or means over
    realizations), `group_length` `(S, G)`, `entropy` `(S,)` and `fractions`, `omegas` `(G,)`;
    optionally `antineutrino` `(G,)` (those groups are labelled) and `basis` (default "mass").
    Panels: each group's mean `P_z` with the spread of its members shaded; the transverse length
    `|<P_perp>|` of each group mean; each group's mean `|P_i|` and the gas's mean entropy.
    With a `path` group (`ts`, `P` `(T, G, 3)` from `miscidynamic_path`) the miscidynamic
    prediction is drawn dashed on every panel.
    Returns the matplotlib figure.
    """
    plt = _pyplot()
    ts = np.asarray(data["ts"])
    mean = np.asarray(data["group_mean"])
    std = np.asarray(data["group_std"])
    length = np.asarray(data["group_length"])
    fractions, omegas = np.asarray(data["fractions"]), np.asarray(data["omegas"])
    antineutrino = np.asarray(data.get("antineutrino", np.zeros(len(fractions), bool)))
    basis = data.get("basis", "mass")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), constrained_layout=True)
    colours = plt.cm.tab10(np.arange(mean.shape[1]))
    for g, colour in enumerate(colours):
        species = r"$\bar\nu$ " if antineutrino[g] else ""
        label = rf"group {g + 1}: {species}{100 * fractions[g]:.0f}%, $\omega = {omegas[g]:g}\,\mu$"
        axes[0].fill_between(
            ts,
            mean[:, g, 2] - std[:, g, 2],
            mean[:, g, 2] + std[:, g, 2],
            color=colour,
            alpha=0.2,
            lw=0,
        )
        axes[0].plot(ts, mean[:, g, 2], color=colour, lw=1.2, label=label)
        perp = np.linalg.norm(mean[:, g, :2], axis=-1)
        axes[1].plot(ts, perp, color=colour, lw=1.2, label=label)
        axes[2].plot(
            ts,
            length[:, g],
            color=colour,
            lw=1.2,
            label=rf"$\langle|\mathbf{{P}}_i|\rangle$, group {g + 1}",
        )
    if "path" in data:
        # The miscidynamic path (physics.md section 8): equilibria in the co-rotating frame, whose
        # P_z and |P_perp| are those of the lab frame.
        path_ts, path_P = np.asarray(data["path"]["ts"]), np.asarray(data["path"]["P"])
        style = dict(color="k", lw=1.0, ls="--", zorder=5)
        for g in range(path_P.shape[1]):
            axes[0].plot(path_ts, path_P[:, g, 2], **style)
            axes[1].plot(path_ts, np.linalg.norm(path_P[:, g, :2], axis=-1), **style)
            axes[2].plot(path_ts, np.linalg.norm(path_P[:, g], axis=-1), **style)
        axes[0].plot([], [], color="k", lw=1.2, ls="--", label="miscidynamic path")
    axes[2].plot(
        ts,
        np.asarray(data["entropy"]) / np.log(2),
        color="0.45",
        lw=1.5,
        ls=":",
        label=r"entropy / $\ln 2$",
    )
    axes[0].set(
        xlabel=r"$\mu t$",
        ylabel=rf"$\langle P_z \rangle$ ({basis} basis), $\pm$ spread",
        ylim=(-1.05, 1.05),
    )
    axes[0].set_title("longitudinal")
    axes[1].set(xlabel=r"$\mu t$", ylabel=r"$|\langle \mathbf{P}_\perp \rangle|$", ylim=(0, None))
    axes[1].set_title("transverse (collective precession)")
    axes[2].set(xlabel=r"$\mu t$", ylim=(0, 1.05))
    axes[2].set_title("decoherence by entanglement")
    for ax in axes:
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def _occupations(P):
    """Flavour occupations `rho_aa = 1/n + (P . lambda_aa) / 2` of Bloch vectors `(..., D)`."""
    from .._physics.flavours import flavour_count, gell_mann

    P = np.asarray(P)
    n = flavour_count(P.shape[-1])
    diagonals = np.real(np.einsum("akk->ak", gell_mann(n)))
    return 1.0 / n + P @ diagonals / 2


def plot_flavours(data: Mapping, *, title: str | None = None):
    """The figure of a three-flavour run: `data` has `ts` `(S,)`, `group_mean` `(S, G, 8)` and
    optionally `group_length` `(S, G)`, `entropy` `(S,)`, `antineutrino` `(G,)`, `basis`, and
    `reference` `(S, G, 8)` (a closed form, drawn dashed). Panels: each group's flavour
    occupations `rho_aa`; the mean length `|P_i|` over that of a pure state, `sqrt(4/3)`; the
    entropy of one neutrino against `ln 3`."""
    plt = _pyplot()
    ts = np.asarray(data["ts"])
    occ = _occupations(data["group_mean"])
    G, n = occ.shape[-2], occ.shape[-1]
    mass = data.get("basis", "flavour") == "mass"
    names = ("1", "2", "3") if mass else ("e", r"\mu", r"\tau")
    anti = np.asarray(data.get("antineutrino", np.zeros(G, bool)), bool)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    colours = plt.cm.tab10(np.arange(G) % 10)
    styles = ("-", "--", ":")
    for g in range(G):
        bar = r"\bar\nu" if anti[g] else r"\nu"
        for a in range(n):
            label = rf"group {g + 1} (${bar}$): $\rho_{{{names[a]}{names[a]}}}$"
            axes[0].plot(ts, occ[:, g, a], color=colours[g], ls=styles[a], lw=1.3, label=label)
        if "reference" in data:
            ref = _occupations(data["reference"])
            for a in range(n):
                axes[0].plot(ts, ref[:, g, a], color="k", lw=0.7, ls=styles[a], alpha=0.6)
        if "group_length" in data:
            length = np.asarray(data["group_length"])[:, g] / np.sqrt(2 * (n - 1) / n)
            axes[1].plot(ts, length, color=colours[g], lw=1.3, label=f"group {g + 1}")
    if "reference" in data:
        axes[0].plot([], [], color="k", lw=0.7, alpha=0.6, label="closed form")
    axes[0].set(xlabel=r"$\mu t$", ylabel="occupation", ylim=(0, 1))
    axes[0].set_title("flavour occupations" + (" (mass basis)" if mass else ""))
    axes[0].legend(fontsize=7, ncol=max(1, G // 2))
    ylabel = r"$\langle|\mathbf{P}_i|\rangle / \sqrt{4/3}$"
    axes[1].set(xlabel=r"$\mu t$", ylabel=ylabel, ylim=(0, 1.05))
    axes[1].set_title("coherence of one neutrino")
    if "group_length" in data:
        axes[1].legend(fontsize=7)
    if "entropy" in data:
        axes[2].plot(ts, np.asarray(data["entropy"]), color="k", lw=1.5, label="gas mean")
    axes[2].axhline(np.log(n), color="crimson", lw=0.8, ls="-.", label=rf"$\ln {n}$")
    ylabel = r"$-\mathrm{Tr}\,\rho\ln\rho$"
    axes[2].set(xlabel=r"$\mu t$", ylabel=ylabel, ylim=(0, 1.15 * np.log(n)))
    axes[2].set_title("entropy of one neutrino")
    axes[2].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def _realization_mean(x):
    x = np.asarray(x)
    return x.mean(0)


def default_title(config: Mapping) -> str:
    """A figure title made from a resolved run configuration (`oile run`), so that it always
    says what was run, `--set` overrides included."""
    model, physics = config["model"], config["physics"]
    parts = []
    if model in ("gas", "meanfield", "manybody"):
        counts = config["gas"]["counts"]
        parts.append(f"N = {sum(counts)} in {len(counts)} groups")
    if physics.get("gamma") is not None:
        parts.append(f"gamma = {physics['gamma']:g}")
    schedule = config.get("schedule", {})
    step = f", dt = {schedule['dt']:g}" if schedule.get("dt") else ""
    if model == "meanfield":
        parts.append(f"collision: {config['meanfield']['collision']}{step}")
    elif schedule:
        parts.append(f"{schedule['kind']}{step}")
    parts.append(f"{physics['angles']} angles")
    if physics.get("n_flavours", 2) == 3:
        parts.append("three flavours")
    if config["run"].get("n_realizations", 1) > 1:
        parts.append(f"{config['run']['n_realizations']} realizations")
    names = {"foreground": "Foreground neutrino", "gas": "Gas", "meanfield": "Mean field"}
    return f"{names.get(model, 'Exact many-body vs OILE')}: " + ", ".join(parts)


def plot_run(data: Mapping, attrs: Mapping):
    """The standard figure of an `oile run` result (`attrs["model"]`) or of an experiment file
    written by `oile path`, `experiments/foreground.py` or `experiments/two_groups.py`."""
    import json

    config = json.loads(attrs["config"]) if "config" in attrs else {}
    title = config.get("title") or (default_title(config) if attrs.get("kind") == "run" else None)
    if attrs.get("kind") == "path":
        if "gas" in data:
            return plot_two_groups({**data["gas"], **data["inputs"], "path": data["path"]})
        return plot_path(data["path"])
    if attrs.get("kind") != "run":
        experiment = config.get("experiment")
        if experiment == "foreground":
            return plot_foreground(data, title=title)
        if experiment in ("two_groups", "miscidynamics") and "group_std" in data:
            return plot_two_groups(data, title=title)
        raise ValueError(
            f"no standard figure for this file (experiment {experiment!r}); its script in "
            "experiments/ draws it"
        )
    model = attrs["model"]
    if model == "foreground" and np.shape(data["mean"])[-1] == 8:
        view = {"ts": data["ts"], "group_mean": np.asarray(data["mean"])[:, None]}
        if "master_equation" in data:
            view["reference"] = np.asarray(data["master_equation"])[:, None]
        view["basis"] = config.get("physics", {}).get("basis", "mass")
        return plot_flavours(view, title=title)
    if model == "foreground":
        run = {
            "gamma": config["physics"]["gamma"],
            "ts": data["ts"],
            "mean": data["mean"],
            "stderr": data["stderr"],
            "example": np.asarray(data["P"])[0],
        }
        if "master_equation" in data:
            run["closed_form"] = data["master_equation"]
        if "exact_mean" in data:
            run["closed_form_dt"] = data["exact_mean"]
        background = {"P_b": np.asarray(config["foreground"]["P_b"])}
        return plot_foreground({"background": background, "run": run}, title=title)
    if model in ("gas", "meanfield"):
        several = model == "gas"
        view = {
            name: _realization_mean(data[name]) if several else data[name]
            for name in ("group_mean", "group_std", "group_length", "entropy")
        }
        if "numbers" in data:
            # The kinetic opacities' occupations `f = N rho`: each group's `rho`, its mean
            # vector over its mean number, so that the panels keep their unit scales.
            numbers = np.asarray(data["numbers"])
            for name in ("group_mean", "group_std"):
                view[name] = np.asarray(view[name]) / numbers[..., None]
            view["group_length"] = np.asarray(view["group_length"]) / numbers
            title = f"{title or ''} (states f / N: the output's numbers give N)".strip()
        view.update(ts=data["ts"], **{k: data["groups"][k] for k in ("fractions", "omegas")})
        if "antineutrino" in data["groups"]:
            view["antineutrino"] = data["groups"]["antineutrino"]
        basis = config.get("physics", {}).get("basis", "mass")
        view["basis"] = "flavour" if basis == "flavor" else basis
        if np.shape(view["group_mean"])[-1] == 8:
            return plot_flavours(view, title=title)
        return plot_two_groups(view, title=title)
    if model == "manybody":
        return _plot_manybody(data, title)
    raise ValueError(f"no standard figure for model {model!r}")


def _plot_manybody(data: Mapping, title):
    plt = _pyplot()
    ts = np.asarray(data["ts"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    exact, oile = (_realization_mean(data[f"{k}_group_mean"]) for k in ("exact", "oile"))
    colours = plt.cm.tab10(np.arange(exact.shape[1]))
    for g, colour in enumerate(colours):
        axes[0].plot(ts, exact[:, g, 2], color=colour, lw=1.5, label=f"group {g + 1}, exact")
        axes[0].plot(ts, oile[:, g, 2], color=colour, lw=1.2, ls="--", label=f"group {g + 1}, OILE")
    for name, ls in (("exact", "-"), ("oile", "--")):
        entropy = _realization_mean(np.asarray(data[f"{name}_entropy"]).mean(-1))
        axes[1].plot(ts, entropy / np.log(2), color="k", ls=ls, label=name)
    axes[0].set(xlabel=r"$\mu t$", ylabel=r"$\langle P_z \rangle$", ylim=(-1.05, 1.05))
    axes[0].set_title("group means (realization average)")
    axes[1].set(xlabel=r"$\mu t$", ylabel=r"entropy / $\ln 2$", ylim=(0, 1.05))
    axes[1].set_title("one-neutrino entanglement entropy")
    for ax in axes:
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_path(path: Mapping, *, title: str | None = None):
    """A miscidynamic path (`miscidynamic_path` data: `ts`, `lengths` `(T, G)`, `Omega`, `Q`):
    the group lengths `|p_g|`, `Q = |Pbar_perp|` and the precession frequency against time."""
    plt = _pyplot()
    ts = np.asarray(path["ts"])
    lengths = np.abs(np.asarray(path["lengths"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for g in range(lengths.shape[1]):
        axes[0].plot(ts, lengths[:, g], lw=1.5, label=rf"$|p_{g + 1}|$")
    axes[1].plot(ts, np.asarray(path["Q"]), color="k", lw=1.5)
    axes[2].plot(ts, np.asarray(path["Omega"]), color="k", lw=1.5)
    axes[0].set(xlabel=r"$\mu t$", ylabel="group length", ylim=(0, 1.05))
    axes[0].legend(fontsize=8)
    axes[1].set(xlabel=r"$\mu t$", ylabel=r"$Q = |\bar{\mathbf{P}}_\perp|$", ylim=(0, None))
    axes[2].set(xlabel=r"$\mu t$", ylabel=r"$\Omega$ ($\mu$)")
    axes[0].set_title("miscidynamic path: lengths")
    axes[1].set_title("transverse polarization")
    axes[2].set_title("precession frequency")
    fig.suptitle(title or "Miscidynamic path along the collective precession equilibria")
    return fig
