"""The `oile` commands of the group equations: `equilibrium` (precession equilibria) and `path`
(the miscidynamic path, from groups or from a gas result)."""

from pathlib import Path

import numpy as np

from .._equilibria.equilibrium import MAX_SAVES
from .commands import (
    Failure,
    check_output,
    command_line,
    json_attribute,
    missing_datasets,
    write_figure,
)


def _groups_args(args):
    names = ("fractions", "omegas", "lengths")
    missing = [f"--{n}" for n in names if getattr(args, n) is None]
    if missing or args.Pz is None:
        raise Failure(
            f"give {', '.join(missing + (['--Pz'] if args.Pz is None else []))} "
            "(or --from RESULT.h5 for oile path)"
        )
    sizes = {len(getattr(args, n)) for n in names}
    if len(sizes) != 1:
        raise Failure("--fractions, --omegas and --lengths need one value per group each")
    fractions = np.asarray(args.fractions)
    if np.any(fractions <= 0) or abs(fractions.sum() - 1) > 1e-9:
        raise Failure(f"--fractions must be positive and sum to 1, got {args.fractions}")
    if not np.all(np.isfinite(args.lengths)) or np.any(np.abs(args.lengths) > 1):
        raise Failure(f"--lengths are signed |P_g| <= 1, got {args.lengths}")
    if not np.all(np.isfinite(args.omegas)):
        raise Failure(f"--omegas must be finite numbers, got {args.omegas}")
    if not abs(args.Pz) <= 1:
        raise Failure(f"--Pz is Pbar_z, the lepton number per neutrino, in [-1, 1]; got {args.Pz}")
    if not args.mu > 0 or not np.isfinite(args.mu):
        raise Failure(f"--mu is the coupling and must be > 0, got {args.mu:g}")
    return fractions, np.asarray(args.omegas), np.asarray(args.lengths), float(args.Pz)


def _equilibrium_table(eqs) -> list[str]:
    lines = [f"{'branch':>14}{'Omega':>14}{'Q':>12}{'|residual|':>12}  P_g (co-rotating frame)"]
    for k in range(eqs.Omega.shape[0]):
        P = np.asarray(eqs.P[k])
        lines.append(
            f"{str(np.asarray(eqs.branch[k]).tolist()):>14}{float(eqs.Omega[k]):>14.8f}"
            f"{float(eqs.Q[k]):>12.8f}{float(np.max(np.abs(eqs.residual[k]))):>12.1e}  "
            + "; ".join(np.array2string(p, precision=5) for p in P)
        )
    return lines


def cmd_equilibrium(args) -> int:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    from .._equilibria.equilibrium import equilibrium_branches, precession_equilibrium
    from .._output.io import write_h5

    fractions, omegas, lengths, Pz = _groups_args(args)
    if args.out:
        check_output(args.out, "--out", args.force)
    if args.guess is not None:
        eq = precession_equilibrium(
            lengths, fractions, omegas, Pz, mu=args.mu, guess=tuple(args.guess)
        )
        if not bool(eq.converged):
            raise Failure(f"Newton did not converge from --guess {args.guess}")
        eqs = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], eq)
    else:
        eqs = equilibrium_branches(lengths, fractions, omegas, Pz, mu=args.mu)
    if eqs.Omega.shape[0] == 0:
        print("no precession equilibrium with Q > 0 for these lengths and Pz")
        return 1
    print("\n".join(_equilibrium_table(eqs)))
    if args.out:
        data = {k: np.asarray(getattr(eqs, k)) for k in ("Omega", "Q", "P", "residual", "branch")}
        inputs = {"fractions": fractions, "omegas": omegas, "lengths": lengths, "Pz": Pz}
        write_h5(
            args.out,
            {**data, "inputs": inputs},
            attrs={"kind": "equilibrium", "command": command_line(args)},
            force=args.force,
        )
        print(f"wrote {args.out}")
    return 0


def _from_result(path: Path, start: float):
    """`(gas, gamma, mu)` of a gas run or of the two-group experiment: `gas` holds `ts` and the
    realization-averaged `group_mean`, `group_std`, `group_length`, `entropy`, with `fractions`
    and `omegas`."""
    from .._output.io import read_h5

    data, attrs = read_h5(path)
    config = json_attribute(path, attrs, "config")
    if attrs.get("kind") == "run" and attrs.get("model") in ("gas", "meanfield"):
        fractions, omegas = data["groups"]["fractions"], data["groups"]["omegas"]
        gamma, mu = config["physics"]["gamma"], config["physics"]["mu"]
        if config["physics"]["basis"] != "mass":
            raise Failure(f"{path}: miscidynamics reads the gas in the mass basis")
    elif config.get("experiment") == "two_groups":
        fractions, omegas = data["fractions"], data["omegas"]
        gamma, mu = config["gamma"], 1.0
    else:
        raise Failure(f"{path} is not a gas run (oile run, model 'gas') or a two_groups result")
    ts = np.asarray(data["ts"], dtype=float)
    if not ts[0] <= start < ts[-1]:
        raise Failure(f"--start {start:g} is outside the run's times [{ts[0]:g}, {ts[-1]:g})")
    if gamma is None:
        raise Failure(f"{path}: the run has no gamma (a pure mean field has no miscidynamics)")
    names = ("group_mean", "group_std", "group_length", "entropy")
    several = np.ndim(data["group_mean"]) == 4  # realizations first: average them
    gas = {k: np.asarray(data[k], dtype=float) for k in names}
    for name, values in gas.items():
        if not np.all(np.isfinite(values)):
            raise Failure(
                f"{path}: dataset {name!r} holds NaN or inf (a run that went wrong); a path "
                "cannot start from it"
            )
    gas = {k: v.mean(0) if several else v for k, v in gas.items()}
    gas.update(ts=ts, fractions=np.asarray(fractions), omegas=np.asarray(omegas))
    return gas, float(gamma), float(mu)


def cmd_path(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from .._equilibria.path import miscidynamic_path, path_from_gas
    from .._output.io import write_h5
    from .._output.plot import plot_path, plot_two_groups

    out = args.out
    figure = out.with_suffix(".png")
    for path in (out, figure):
        check_output(path, "--out", args.force)
    gas = None
    if not 2 <= args.n_saves <= MAX_SAVES:
        raise Failure(
            f"--n-saves must be at least 2 (the start and the end) and at most {MAX_SAVES} "
            f"(each save interval is one integration of the path), got {args.n_saves}"
        )
    if args.source is not None:
        # Everything else comes from the run: refuse what would be ignored.
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("fractions", "omegas", "lengths", "Pz", "gamma", "t_max", "guess")
            if getattr(args, name) is not None
        ] + (["--mu"] if args.mu != 1.0 else [])
        if given:
            raise Failure(
                f"{', '.join(given)}: not used with --from, which takes the groups, gamma, mu "
                "and the times from the run (drop them, or drop --from to give the groups)"
            )
        with missing_datasets(args.source):
            gas, gamma, mu = _from_result(args.source, args.start)
        fractions, omegas = gas["fractions"], gas["omegas"]
        state, solution = path_from_gas(
            gas["ts"], gas["group_mean"], fractions, omegas, start=args.start, gamma=gamma, mu=mu
        )
        Pz = state.Pz
    else:
        fractions, omegas, lengths, Pz = _groups_args(args)
        if args.gamma is None or args.t_max is None:
            raise Failure("give --gamma and --t-max (or --from RESULT.h5)")
        if not args.gamma > 0 or not np.isfinite(args.gamma):
            raise Failure(f"--gamma is the impact parameter and must be > 0, got {args.gamma:g}")
        if not args.t_max > 0 or not np.isfinite(args.t_max):
            raise Failure(f"--t-max is the path's length and must be > 0, got {args.t_max:g}")
        gamma, mu = args.gamma, args.mu
        solution = miscidynamic_path(
            jnp.asarray(lengths),
            jnp.asarray(fractions),
            jnp.asarray(omegas),
            Pz,
            np.linspace(0.0, args.t_max, args.n_saves),
            gamma=gamma,
            mu=mu,
            guess=None if args.guess is None else tuple(args.guess),
        )
    result = {k: np.asarray(getattr(solution, k)) for k in ("ts", "lengths", "Omega", "Q", "P")}
    inputs = {"fractions": fractions, "omegas": omegas, "Pz": float(Pz), "gamma": gamma, "mu": mu}
    saved = {"path": result, "inputs": inputs}
    if gas is not None:
        saved["gas"] = gas
    attrs = {
        "kind": "path",
        "command": command_line(args),
        "source": str(args.source or ""),
        "start": float(result["ts"][0]),
    }
    write_h5(out, saved, attrs=attrs, force=args.force)
    fig = plot_two_groups({**gas, "path": result}) if gas is not None else plot_path(result)
    write_figure(fig, figure, args.force)
    print(
        f"path from mu t = {result['ts'][0]:g} to {result['ts'][-1]:g}: lengths "
        f"{np.array2string(result['lengths'][0], precision=4)} -> "
        f"{np.array2string(result['lengths'][-1], precision=4)}, Q {result['Q'][0]:.4f} -> "
        f"{result['Q'][-1]:.4f}, Omega {result['Omega'][0]:.5f} -> {result['Omega'][-1]:.5f}"
    )
    print(f"wrote {out} and {figure}")
    return 0


# ---------------------------------------------------------------------------------------------
# oile bench
