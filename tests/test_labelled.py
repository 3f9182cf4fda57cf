"""Results as labelled arrays (`to_xarray`): HDF5 files and the solutions of every model as
`xarray.Dataset`s with named dimensions, coordinates and units, holding the same numbers."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj

jax.config.update("jax_enable_x64", True)
xr = pytest.importorskip("xarray")  # in the dev and docs extras: CI has it


def _gas():
    return oj.Gas((6, 4), jnp.array([0.1, 0.2]), jnp.array([[0.1, 0, 0.99], [0, 0.1, -0.99]]),
                  antineutrino=[False, True])  # fmt: skip


def _gas_solution():
    system = oj.System(gamma=0.1, B=oj.mixing_vector(0.2))
    sampling = oj.Sampling(jax.random.key(0), n_steps=6, n_realizations=3, dtype=jnp.float64)
    return oj.simulate_gas(_gas(), system, oj.Stochastic(dt=0.1), sampling,
                           saveat=oj.SaveAt(every=2))  # fmt: skip


def test_gas_solution_as_a_dataset():
    """A gas run: dimensions (realization, time, group, component), the save times, the
    groups' frequencies, species and counts as coordinates, units on every variable, and the
    same numbers; averaging over realizations and selecting a species by name."""
    sol = _gas_solution()
    ds = oj.to_xarray(sol, groups=_gas())
    assert ds.group_mean.dims == ("realization", "time", "group", "component")
    assert ds.group_entropy.dims == ("realization", "time", "group")
    assert ds.total.dims == ("realization", "time", "component")
    assert ds.final_state.dims == ("realization", "neutrino", "component")
    np.testing.assert_array_equal(ds.time.values, sol.ts)
    assert ds.time.attrs["units"] == "1/mu"
    np.testing.assert_array_equal(ds.omega.values, [0.1, 0.2])
    assert list(ds.species.values) == ["nu", "nubar"] and list(ds["count"].values) == [6, 4]
    assert list(ds.component.values) == ["x", "y", "z"]
    assert ds.group_entropy.attrs["units"] == "nats" and ds.group_mean.attrs["units"] == "1"
    for name in ("group_mean", "group_std", "group_length", "total", "lepton", "final_state"):
        np.testing.assert_array_equal(ds[name].values, np.asarray(getattr(sol, name)))
    np.testing.assert_array_equal(ds.occupations.values, sol.occupations)
    nubar = ds.group_mean.mean("realization").where(ds.species == "nubar", drop=True)
    np.testing.assert_array_equal(nubar.sel(component="z").values[:, 0],
                                  np.asarray(sol.group_mean).mean(0)[:, 1, 2])  # fmt: skip


def test_hdf5_to_dataset_round_trip(tmp_path):
    """`write_h5` -> `to_xarray(path)` (and `read_h5`'s pair): the same numbers, the file's
    attributes, its group table as coordinates, a nested group as `group/name` variables, and
    dimensions named from the file's `axes`."""
    sol = _gas_solution()
    groups = {
        "counts": np.array([6, 4]),
        "omegas": np.array([0.1, 0.2]),
        "fractions": np.array([0.6, 0.4]),
        "antineutrino": np.array([False, True]),
    }
    data = {"ts": sol.ts, "group_mean": sol.group_mean, "entropy": sol.entropy,
            "occupations": sol.occupations, "groups": groups,
            "extra": {"note_values": np.arange(4.0)}}  # fmt: skip
    path = oj.write_h5(tmp_path / "run.h5", data, attrs={"kind": "run", "model": "gas"})
    for view in (oj.to_xarray(path), oj.to_xarray(oj.read_h5(path))):
        np.testing.assert_array_equal(view.group_mean.values, sol.group_mean)
        np.testing.assert_array_equal(view.entropy.values, sol.entropy)
        np.testing.assert_array_equal(view.occupations.values, sol.occupations)
        np.testing.assert_array_equal(view.time.values, sol.ts)
        np.testing.assert_array_equal(view.fraction.values, [0.6, 0.4])
        np.testing.assert_array_equal(view["extra/note_values"].values, np.arange(4.0))
        assert view.occupations.dims == ("realization", "time", "group", "flavour")
        assert list(view.flavour.values) == ["e", "x"]
        assert view.attrs["model"] == "gas" and view.attrs["kind"] == "run"
        assert "groups/counts" not in view


def test_mean_field_path_and_manybody_solutions():
    """A kinetic mean field's traces become `numbers`; a miscidynamic path's vectors are
    (time, group, component); a many-body run's states (realization, time, neutrino,
    component); three flavours name their 8 components."""
    ops = oj.Opacities([[1.0, 0.2]], [[0.8, 0.2]])
    field = oj.GroupField([1.0], [0.3], oj.System(0.1, B=oj.mixing_vector(0.1), opacities=ops))
    ts = jnp.linspace(0.0, 1.0, 3)
    sol = oj.solve_meanfield(field, jnp.array([[1.0, 0.0, 0.0, 1.0]]), ts)
    ds = oj.to_xarray(sol)
    np.testing.assert_array_equal(ds.numbers.values, np.asarray(sol.P)[..., 0])
    np.testing.assert_array_equal(ds.group_mean.values, np.asarray(sol.P)[..., 1:])
    assert ds.group_mean.dims == ("time", "group", "component")
    path = oj.PathSolution(ts, jnp.ones((3, 2)), jnp.zeros(3), jnp.zeros(3), jnp.ones((3, 2, 3)))
    ds = oj.to_xarray(path)
    assert ds.P.dims == ("time", "group", "component") and ds.lengths.dims == ("time", "group")
    states, entropies = jnp.zeros((1, 3, 4, 3)), jnp.zeros((1, 3, 4))
    mb = oj.ManyBodySolution(ts, states, states, entropies, entropies, jnp.ones((1, 3)))
    assert oj.to_xarray(mb).exact.dims == ("realization", "time", "neutrino", "component")
    sampling = oj.Sampling(jax.random.key(0), n_steps=4, n_realizations=2, dtype=jnp.float64)
    fg = oj.simulate_foreground(jnp.array([0.0, 0.0, 1.0]), jnp.array([1.0, 0.0, 0.0]),
                                oj.System(0.1), oj.Stochastic(dt=0.1), sampling)  # fmt: skip
    ds = oj.to_xarray(fg)
    assert ds.P.dims == ("realization", "time", "component")
    assert ds["mean"].dims == ("time", "component")  # `ds.mean` is the Dataset's method
    np.testing.assert_array_equal(ds["mean"].values, np.asarray(fg.mean))
    three = oj.to_xarray({"ts": np.arange(2.0), "group_mean": np.zeros((2, 1, 8))})
    assert list(three.component.values) == [str(a) for a in range(1, 9)]


def test_without_xarray_says_how_to_install(monkeypatch):
    """Without xarray the view says how to install it; importing the package does not import
    xarray."""
    import subprocess

    probe = "import sys, oile_jax; print('xarray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"oile_jax\[xarray\]"):
        oj.to_xarray({"ts": np.arange(2.0)})
    with pytest.raises(TypeError, match="solution of oile_jax"):
        monkeypatch.delitem(sys.modules, "xarray")
        oj.to_xarray(object())
