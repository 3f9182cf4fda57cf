import os

import h5py
import numpy as np
import pytest

import oile_jax as oj
from oile_jax._output import io as _io

from .conftest import assert_allclose


def sample():
    return {
        "run": {"ts": np.linspace(0, 1, 5), "P": np.ones((2, 5, 3)), "gamma": 0.1},
        "n": np.int64(3),
    }


def test_round_trip_with_provenance(tmp_path):
    path = oj.write_h5(tmp_path / "out.h5", sample(), attrs={"config": {"gamma": 0.1, "name": "x"}})
    data, attrs = oj.read_h5(path)
    assert_allclose(data["run"]["P"], np.ones((2, 5, 3)), rtol=0, atol=0)
    assert float(data["run"]["gamma"]) == 0.1 and int(data["n"]) == 3
    assert attrs["format"] == "oile_jax-result" and attrs["oile_jax_version"] == oj.__version__
    assert attrs["device"].startswith("cpu") and "jax_version" in attrs
    assert '"gamma": 0.1' in attrs["config"]
    assert not list(tmp_path.glob(".*tmp"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_existing_file_is_never_overwritten_without_force(tmp_path):
    path = oj.write_h5(tmp_path / "out.h5", sample())
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="force"):
        oj.write_h5(path, {"other": np.zeros(2)})
    assert path.read_bytes() == before
    oj.write_h5(path, {"other": np.zeros(2)}, force=True)
    assert set(oj.read_h5(path)[0]) == {"other"}


def test_failed_write_leaves_existing_file_intact(tmp_path):
    path = oj.write_h5(tmp_path / "out.h5", sample())
    before = path.read_bytes()
    with pytest.raises(ValueError, match="dtype object"):
        oj.write_h5(path, {"good": np.zeros(3), "bad": np.array([object()])}, force=True)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp"))


def test_foreign_and_corrupt_files_are_rejected(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="not an oile_jax result file"):
        oj.read_h5(foreign)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="corrupt or not an HDF5 file"):
        oj.read_h5(corrupt)
    newer = tmp_path / "newer.h5"
    oj.write_h5(newer, sample(), attrs={"format_version": _io.FORMAT_VERSION + 1})
    with pytest.raises(ValueError, match="format_version"):
        oj.read_h5(newer)
    with pytest.raises(FileNotFoundError):
        oj.read_h5(tmp_path / "missing.h5")
