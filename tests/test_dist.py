"""Release hygiene (`make dist-check`, marker `dist`): `python -m build` makes an sdist and a
wheel of the version set in `pyproject.toml`; each installs into a clean virtual environment
(no access to this checkout) where `oile presets` lists the shipped presets and a small
`oile run` writes its HDF5 file. Needs the package registry (the build backend and the
dependencies are installed as a user's pip would)."""

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.dist

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], check=True)
    sdist = out / f"oile_jax-{VERSION}.tar.gz"
    wheel = out / f"oile_jax-{VERSION}-py3-none-any.whl"
    assert sdist.is_file() and wheel.is_file(), sorted(p.name for p in out.iterdir())
    return sdist, wheel


def test_the_wheel_holds_the_package_and_its_presets_only(dist):
    _, wheel = dist
    names = zipfile.ZipFile(wheel).namelist()
    assert "oile_jax/__init__.py" in names and "oile_jax/_gas/driver.py" in names
    assert "oile_jax/_app/presets/two-groups.toml" in names
    assert not [n for n in names if n.startswith(("tests/", "experiments/", "docs/"))]
    metadata = zipfile.ZipFile(wheel).read(f"oile_jax-{VERSION}.dist-info/METADATA").decode()
    assert f"Version: {VERSION}" in metadata


def test_the_sdist_holds_the_sources(dist):
    sdist, _ = dist
    names = tarfile.open(sdist).getnames()
    top = f"oile_jax-{VERSION}"
    for path in ("pyproject.toml", "README.md", "oile_jax/_app/presets/foreground.toml"):
        assert f"{top}/{path}" in names, path


@pytest.mark.parametrize("which", ["wheel", "sdist"])
def test_installs_into_a_clean_environment_and_runs(dist, which, tmp_path):
    artifact = dist[1] if which == "wheel" else dist[0]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, str(artifact)], check=True)
    oile = str(venv / "bin" / "oile")
    run = lambda *args: subprocess.run(  # noqa: E731
        [oile, *args], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"PATH": str(venv / "bin"), "HOME": str(tmp_path), "OILE_NO_COMPILE_CACHE": "1"},
    )  # fmt: skip
    version = run("--version").stdout
    assert VERSION in version
    presets = run("presets").stdout
    assert "two-groups" in presets and "foreground" in presets
    out = tmp_path / "smoke.h5"
    run("run", "foreground", "--set", "run.t_max=2", "--set", "run.n_saves=5",
        "--set", "run.n_realizations=4", "--out", str(out), "--no-progress")  # fmt: skip
    assert out.is_file() and out.stat().st_size > 0
    # The installed package, not this checkout, ran.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import oile_jax; print(oile_jax.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(venv) in where
