"""Results as labelled arrays: a solution of the package, or an HDF5 result file, viewed as an
`xarray.Dataset` with named dimensions, coordinates and units.

xarray is an optional extra (`pip install oile_jax[xarray]`), imported only here, when a view
is asked for: the package computes and stores its results without it.

The dimensions are those of the HDF5 files' `axes` attributes (`_app/datasets.py`), with the
save axis named `time`: `realization`, `time`, `group`, `component`, `flavour`, `neutrino`.
Coordinates: `time`, the save times `t` (in `1/mu`: `ds.sel(time=50.0, method="nearest")`);
along `group` its index and the groups' `omega` (in `mu`),
`species` (`"nu"` or `"nubar"`), `count` and `fraction` where known; `component` named
`x, y, z` (two flavours; `1 ... 8` for three); `flavour` named `e, x` or `e, mu, tau` (`1, 2`
or `1, 2, 3` in the mass basis). Every variable carries its `units` and `description`; the
dataset carries the file's attributes (`model`, `kind`, `config`, ...).
"""

import json
import os
from collections.abc import Mapping

import numpy as np

from .._app.datasets import describe
from .._gas.observe import FIELDS

# The save axis of the files is the time axis of the view.
_RENAMED = {"save": "time"}
# What the solutions of the package hold, by the names of their HDF5 datasets.
_SOLUTION_FIELDS = (
    "ts",
    *FIELDS,  # a gas's observables
    "occupations",
    "entropy",
    "flavour_numbers",
    "encounters",
    "final_state",
    "state",
    "velocities",
    "P",
    "mean",
    "stderr",
    "exact",
    "oile",
    "exact_entropy",
    "oile_entropy",
    "norm",
    "lengths",
    "Omega",
    "Q",
)


def _xarray():
    try:
        import xarray
    except ImportError:
        raise ImportError(
            "to_xarray needs xarray, an optional extra of oile_jax: pip install "
            "'oile_jax[xarray]' (or pip install xarray)"
        ) from None
    return xarray


def to_xarray(result, *, groups=None, basis: str = "flavour"):
    """`result` as an `xarray.Dataset`.

    **Arguments:**
    - `result`: the path of an HDF5 result (`oile run`, the experiments, `write_h5`), the pair
      `(data, attrs)` of `read_h5`, or a solution: `GasSolution`, `GasTrajectory`,
      `ForegroundSolution`, `MeanFieldSolution`, `PathSolution`, `ManyBodySolution`.
    - `groups`: for a solution, the `Gas` it ran (its groups' frequencies, species and counts
      become coordinates along `group`; a `MeanFieldSolution`'s classes are its groups).
      Files carry their groups already.
    - `basis`: for a solution, the basis its states are written in (`"flavour"` or `"mass"`),
      which names the flavours; files carry theirs.

    Datasets whose axes the package does not know keep dimensions named after them
    (`name_0`, `name_1`, ...). Nested groups of a file (`groups/`, `path/`, `inputs/`) become
    variables named `group/name`.
    """
    xr = _xarray()
    attrs, kind = {}, ""
    if isinstance(result, (str, os.PathLike)):
        from .io import read_h5

        data, attrs = read_h5(result)
    elif isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Mapping):
        data, attrs = result
    elif isinstance(result, Mapping):
        data = result
    else:
        data, kind = _solution_data(result)
        attrs = {"kind": kind} if kind else {}
        if groups is not None:
            data["groups"] = _group_table(groups)
    attrs = {k: v for k, v in dict(attrs).items() if isinstance(v, (str, int, float, bool))}
    kind = str(attrs.get("kind", ""))
    config = attrs.get("config")
    if isinstance(config, str):  # a run's resolved configuration, as JSON
        basis = json.loads(config).get("physics", {}).get("basis", basis)
    variables, coords = {}, {}
    for path, array in _flatten(data):
        array = np.asarray(array)
        if array.dtype.kind in "OSU" and array.ndim == 0:
            continue
        dims = _dims(path, array.ndim, kind)
        entry = describe(path, array.ndim, kind) or {}
        var_attrs = {k: entry[k] for k in ("units", "description") if k in entry}
        variables[path] = xr.Variable(dims, array, attrs=var_attrs)
    ts = data.get("ts") if isinstance(data, Mapping) else None
    if ts is not None and np.ndim(ts) == 1:
        coords["time"] = xr.Variable(
            ("time",), np.asarray(ts), attrs={"units": "1/mu", "long_name": "t"}
        )
        variables.pop("ts", None)
    table = data.get("groups") if isinstance(data, Mapping) else None
    if isinstance(table, Mapping):
        coords.update(_group_coords(xr, table))
        for name in table:
            variables.pop(f"groups/{name}", None)
    sizes = {}
    for variable in variables.values():
        sizes.update(variable.sizes)
    if "component" in sizes:
        coords["component"] = _component_names(sizes["component"])
    if "flavour" in sizes:
        coords["flavour"] = _flavour_names(sizes["flavour"], basis)
    if "group" in sizes and "group" not in coords:
        coords["group"] = np.arange(sizes["group"])
    coords = {k: v for k, v in coords.items() if _fits(v, sizes)}
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _flatten(data, prefix=""):
    """`(path, array)` of nested mappings, `a/b` for nested names."""
    for name, value in data.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{path}/")
        elif value is not None:
            yield path, value


def _dims(path: str, ndim: int, kind: str) -> tuple[str, ...]:
    entry = describe(path, ndim, kind)
    if entry is None or entry["axes"].startswith("axis"):
        name = path.replace("/", "_")
        return tuple(f"{name}_{k}" for k in range(ndim))
    names = tuple(a.strip() for a in entry["axes"].split(",")) if ndim else ()
    return tuple(_RENAMED.get(a, a) for a in names)


def _fits(value, sizes) -> bool:
    import xarray

    if isinstance(value, xarray.Variable):
        return all(sizes.get(d) == n for d, n in value.sizes.items())
    return True


def _component_names(D: int):
    return ["x", "y", "z"] if D == 3 else [str(a) for a in range(1, D + 1)]


def _flavour_names(n: int, basis: str):
    if basis == "mass":
        return [str(a) for a in range(1, n + 1)]
    return ["e", "x"] if n == 2 else ["e", "mu", "tau"]


def _group_coords(xr, table: Mapping) -> dict:
    """Coordinates along `group` from a file's or a gas's group table."""
    coords = {}
    names = {"omegas": ("omega", "mu"), "counts": ("count", "1"), "fractions": ("fraction", "1")}
    for key, (name, units) in names.items():
        if key in table:
            coords[name] = xr.Variable(("group",), np.asarray(table[key]), attrs={"units": units})
    if "antineutrino" in table:
        anti = np.asarray(table["antineutrino"], bool)
        coords["species"] = xr.Variable(("group",), np.where(anti, "nubar", "nu"))
    return coords


def _group_table(gas) -> dict:
    """The group table of a `Gas` (or anything with `counts`, `omegas`, `antineutrino`)."""
    counts = np.asarray(gas.counts)
    table = {"counts": counts, "fractions": counts / counts.sum()}
    if getattr(gas, "omegas", None) is not None:
        table["omegas"] = np.asarray(gas.omegas)
    anti = getattr(gas, "antineutrino", None)
    table["antineutrino"] = (
        np.broadcast_to(np.asarray(anti, bool), counts.shape)
        if (anti is not None)
        else np.zeros(counts.shape, bool)
    )
    return table


def _solution_data(solution) -> tuple[dict, str]:
    """The arrays of a solution, by the names of the HDF5 datasets that hold them, and the
    `kind` of file whose names they are (`"path"` for a miscidynamic path)."""
    from .._equilibria.equilibrium import PathSolution
    from .._meanfield.fields import MeanFieldSolution

    if isinstance(solution, MeanFieldSolution):
        P = np.asarray(solution.P)
        data = {"ts": np.asarray(solution.ts)}
        if P.ndim == 3 and P.shape[-1] in (4, 9):  # the kinetic opacities': the traces first
            data["numbers"], P = P[..., 0], P[..., 1:]
        data["group_mean" if P.ndim == 3 else "state_of_the_field"] = P
        return data, ""
    data = {}
    for name in _SOLUTION_FIELDS:
        try:
            value = getattr(solution, name)
        except AttributeError:
            continue
        if value is not None:
            data[name] = np.asarray(value)
    if not data:
        raise TypeError(
            f"to_xarray takes a solution of oile_jax, an HDF5 result's path or read_h5's "
            f"(data, attrs), got {type(solution).__name__}"
        )
    return data, "path" if isinstance(solution, PathSolution) else ""
