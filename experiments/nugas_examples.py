"""NuGas's own numbers on two of its example problems, stored for the user guide's page "Coming
from NuGas or Emu" (docs/guide/from-nugas-emu.md), which sets the same problems up in oile_jax at
build time and compares.

NuGas (Duan's Python package, NuCO-UNM/nugas) is not a dependency: run this script where it is
importable (a checkout's `src/` on `PYTHONPATH` is enough, its `f2i` package being pure NumPy and
SciPy), and commit the JSON it writes. The problems are those of its notebooks `docs/f2i/`:

- `bipolar.ipynb`, "First example": a `nu_e` mode (`omega = 1`, weight 1) and a `nubar_e` mode
  (`omega = -1`, weight -1), `theta = 0.1`, `mu = 1`, no matter (the mass basis), normal and
  inverted ordering, saved at `t = 0.1, 0.2, ..., 10`;
- `spectral-splits.ipynb`, "Spectral split": 201 frequencies on [0, 2] with Simpson weights
  times `g = 1/2`, every mode at `P = (sqrt(3)/2, 0, 1/2)` in the mass basis, `theta =
  arcsin(0.05)/2`, inverted ordering, `mu(t) = 100 exp(-0.03 t)` down to 0.1 (300 saves).

Each is run with NuGas's defaults, SciPy's RK45 at `rtol = atol = 1e-8`, and again at 1e-12
(the keys ending in `_tight`), which shows how much of a difference is NuGas's own step error.

    PYTHONPATH=/path/to/nugas/src python experiments/nugas_examples.py --commit 884d44e
"""

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import scipy

OUT = Path(__file__).resolve().parent / "reference" / "nugas_examples.json"


def bipolar(imo: bool, tolerance: float) -> dict:
    from nugas.f2i import NuGas

    # omegas (1, -1), weights (1, -1), nu_e in the mass basis
    gas = NuGas(theta=0.1, mu=1, imo=imo, int_kargs=dict(rtol=tolerance, atol=tolerance))
    ts = np.linspace(0, 10, 101)[1:]
    gas.evolve(ts)
    return {"t": gas.t.tolist(), "P": gas.P.tolist()}


def spectral_split(tolerance: float) -> dict:
    from nugas.f2i import NuGas
    from nugas.misc.quadrature import mesh

    Nw = 201
    omegas, weights = mesh(0, 2, Nw, rule="simpson")
    weights = weights * 0.5
    tau = 1 / 0.03
    mu = lambda t: 100 * np.exp(-t / tau)  # noqa: E731
    P0 = np.tile([np.sqrt(1 - 0.5**2), 0, 0.5], (Nw, 1))
    gas = NuGas(
        omegas=omegas, weights=weights, P_ini=P0, theta=np.arcsin(0.05) / 2, mu=mu, imo=True,
        int_kargs=dict(rtol=tolerance, atol=tolerance),
    )  # fmt: skip
    tf = -tau * np.log(0.1 / 100)
    ts = np.linspace(0, tf, 301)[1:]
    gas.evolve(ts)
    return {
        "omegas": omegas.tolist(),
        "weights": weights.tolist(),
        "t_final": float(gas.t[-1]),
        "P_final": gas.P[-1].tolist(),
        "t_mid": float(gas.t[150]),
        "P_mid": gas.P[150].tolist(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", required=True, help="the NuGas commit that ran")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    start = time.perf_counter()
    result = {
        "about": "NuGas's example problems, computed by NuGas itself "
        "(experiments/nugas_examples.py)",
        "nugas_commit": args.commit,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "scipy": scipy.__version__,
        "integrator": "RK45; rtol = atol = 1e-8 (NuGas's defaults), and 1e-12 ('tight')",
    }
    for tolerance, tail in ((1e-8, ""), (1e-12, "_tight")):
        result["bipolar_normal" + tail] = bipolar(imo=False, tolerance=tolerance)
        result["bipolar_inverted" + tail] = bipolar(imo=True, tolerance=tolerance)
        result["spectral_split" + tail] = spectral_split(tolerance)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
