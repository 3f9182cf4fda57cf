"""The experiment scripts run end to end at their smoke size."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import oile_jax as oj

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_foreground_experiment(tmp_path, capsys):
    foreground = load("foreground")
    assert foreground.main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    png, h5 = tmp_path / "foreground.png", tmp_path / "foreground.h5"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    data, attrs = oj.read_h5(h5)
    assert set(data) == {"background", "gamma_0", "gamma_0.03", "gamma_1"}
    assert '"size": "smoke"' in attrs["config"]
    # gamma = 0 keeps |P| = 1. The final simulated means follow the exact mean of their schedule:
    # 16 realizations, so the standardized error is Student-t with 15 degrees of freedom and
    # |t| < 5 has two-sided probability 1.6e-4 per component.
    assert np.allclose(np.linalg.norm(data["gamma_0"]["closed_form"], axis=-1), 1.0, atol=1e-6)
    for name in ("gamma_0.03", "gamma_1"):
        run = data[name]
        t = np.abs(run["mean"][-1] - run["closed_form_dt"][-1]) / run["stderr"][-1]
        assert np.all(t < 5), (name, t)
    assert "wrote" in capsys.readouterr().out
    # Existing output is kept unless --force is given.
    before = h5.read_bytes()
    with pytest.raises(SystemExit):
        foreground.main(["--size", "smoke", "--out", str(tmp_path)])
    assert h5.read_bytes() == before
