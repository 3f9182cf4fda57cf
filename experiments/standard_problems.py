"""The field's standard problems (physics.md section 10), each in the mean field and in OILE at
two values of gamma, against its reference derived in our normalization.

1. MSW: one flavour state in constant matter (neutrinos and antineutrinos), and adiabatic
   conversion through a slowly falling `lambda(t)`.
2. Bipolar pendulum: isotropic `nu_e` and `nubar_e`, inverted ordering, small mixing: growth
   rate and time of the first minimum; the sleeping-top threshold for unequal densities.
3. Two beams (homogeneous, k = 0): `nu_e` along +z, `nubar_e` along -z: growth rate.
4. Spectral split: a box spectrum of `nu_e` and a slowly falling `mu(t)`: the split frequency.

In OILE the growth rates and the split also show what gamma does to each (decoherence).
Writes `standard_problems.png` and `standard_problems.h5` into `--out`.

    python experiments/standard_problems.py --out results
    python experiments/standard_problems.py --size smoke --out /tmp/sp    # used by the tests
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
F64 = jnp.float64
NU_E = jnp.array([0.0, 0.0, 1.0])

SIZES = {
    # name: (N of the two-mode gases, their gammas, realizations, modes of the split, neutrinos
    # per mode, the split's gammas)
    "smoke": (400, (0.02, 0.01), 1, 24, 8, (0.04, 0.02)),
    "default": (4_000, (0.01, 0.001), 2, 60, 60, (0.04, 0.01)),
    "full": (40_000, (0.01, 0.001), 4, 120, 200, (0.02, 0.005)),
}


def flavour_B(theta):
    return jnp.array([np.sin(2 * theta), 0.0, -np.cos(2 * theta)])


# 1. MSW ------------------------------------------------------------------------------------


def msw_reference(ts, omega, theta, lam):
    omega_m = np.hypot(omega * np.cos(2 * theta) - lam, omega * np.sin(2 * theta))
    sin2 = (omega * np.sin(2 * theta) / omega_m) ** 2
    return 1 - sin2 * np.sin(omega_m * ts / 2) ** 2


def cos_2theta_m(omega, theta, lam):
    return (omega * np.cos(2 * theta) - lam) / np.hypot(
        omega * np.cos(2 * theta) - lam, omega * np.sin(2 * theta)
    )


def msw(gammas, *, omega=1.0, theta=0.3, lam=0.6, lam0=20.0, scale=100.0, lam_end=1e-3):
    """Constant matter: `P_ee(t)`, largest error of the mean field and of the gas (a group of
    identical particles) against the closed form, for both species. Adiabatic: `lambda(t) =
    lam0 exp(-t/scale)` down to `lam_end`; `P_ee` averaged over the last 10 vacuum periods
    against `(1 + cos 2theta_m(0) cos 2theta_m(t))/2`, `t` the middle of that window."""
    B = flavour_B(theta)
    out = {}
    ts = jnp.linspace(0.0, 20.0, 201)
    for name, anti in (("nu", False), ("nubar", True)):
        signed = -lam if anti else lam
        ref = msw_reference(np.asarray(ts), omega, theta, signed)
        field = oj.GroupField(
            jnp.ones(1),
            jnp.array([omega]),
            oj.System(gamma=0.0, mu=1.0, B=B, matter=lam),
            antineutrino=jnp.array([anti]),
        )
        mf = oj.solve_meanfield(field, NU_E[None], ts, rtol=1e-12, atol=1e-13).P[:, 0, 2]
        row = {"ts": np.asarray(ts), "reference": ref, "mean_field": (1 + np.asarray(mf)) / 2}
        row["error_mean_field"] = np.abs(row["mean_field"] - ref).max()
        for gamma in gammas:
            gas = oj.Gas(4, jnp.array([omega]), NU_E[None], antineutrino=anti)
            sol = oj.simulate_gas(
                gas,
                system=oj.System(gamma=gamma, B=B, matter=lam),
                schedule=oj.Stochastic(dt=0.5 * gamma),
                sampling=oj.Sampling(key=jax.random.key(0), t_max=20.0, dtype=F64),
                saveat=oj.SaveAt(every=round(0.1 / (0.5 * gamma))),
            )
            Pee = (1 + sol.group_mean[0, :, 0, 2]) / 2
            error = np.abs(Pee - msw_reference(sol.ts, omega, theta, signed)).max()
            row[f"error_oile_{gamma:g}"] = error
        out[f"constant_{name}"] = row

    t_end = scale * np.log(lam0 / lam_end)
    window = 10 * 2 * np.pi / omega
    lam_mid = lam0 * np.exp(-(t_end - window / 2) / scale)
    expected = (1 + cos_2theta_m(omega, theta, lam0) * cos_2theta_m(omega, theta, lam_mid)) / 2
    profile = oj.Exponential(lam0, scale)
    ts = jnp.linspace(t_end - window, t_end, 2001)
    field = oj.GroupField(
        jnp.ones(1), jnp.array([omega]), oj.System(gamma=0.0, mu=1.0, B=B, matter=profile)
    )
    P = oj.solve_meanfield(
        field, NU_E[None], jnp.concatenate([jnp.zeros(1), ts]), rtol=1e-11, atol=1e-12
    ).P[1:, 0, 2]
    mf = (1 + np.asarray(P)) / 2
    adiabatic = {
        "ts": np.asarray(ts),
        "mean_field": mf,
        "reference": expected,
        "final_mean_field": mf.mean(),
    }
    dt = 0.005
    gas = oj.Gas(4, jnp.array([omega]), NU_E[None])
    save = round(window / 200 / dt)
    steps = save * round(t_end / dt / save)
    sol = oj.simulate_gas(
        gas,
        system=oj.System(gamma=gammas[0], B=B, matter=profile),
        schedule=oj.Stochastic(dt=dt),
        sampling=oj.Sampling(key=jax.random.key(0), n_steps=steps, dtype=F64),
        saveat=oj.SaveAt(every=save),
    )
    Pee = (1 + sol.group_mean[0, :, 0, 2]) / 2
    tail = sol.ts > sol.ts[-1] - window
    adiabatic["final_oile"] = Pee[tail].mean()
    adiabatic["oile_ts"], adiabatic["oile"] = sol.ts[tail], Pee[tail]
    out["adiabatic"] = adiabatic
    return out


# 2, 3. Two-mode instabilities ----------------------------------------------------------------


def kappa(omega, mu1, mu2, inverted=True):
    """Linear growth rate of two modes (physics.md section 10); 0 where stable."""
    e = -1.0 if inverted else 1.0
    k2 = -e * omega * (mu1 + mu2) - omega**2 - (mu1 - mu2) ** 2 / 4
    return np.sqrt(max(k2, 0.0))


def ellipk(m):
    """The complete elliptic integral of the first kind, `K(m) = pi / (2 AGM(1, sqrt(1 - m)))`."""
    a, b = 1.0, np.sqrt(1.0 - m)
    while abs(a - b) > 1e-15 * a:
        a, b = (a + b) / 2, np.sqrt(a * b)
    return np.pi / (2 * a)


def pendulum_minima(omega, mu_prime, theta, nodes=400):
    """The bipolar pendulum's first minima at finite `theta` (equal densities, inverted ordering,
    physics.md section 10): `(t_bottom, t_ee, P_ee_min)`.

    `J = s_1 - s_2 + r B` (`r = omega / mu'`, `|J|^2 = 4 - 4 r cos 2theta + r^2`) is released at
    rest at the tilt `phi_0` from its unstable top, `cos phi_0 = (2 cos 2theta - r) / |J|`, and
    swings by `phi'' = kappa_J^2 sin phi`, `kappa_J^2 = omega mu' |J|`; energy conservation gives
    `dphi/dt = kappa_J sqrt(2 (cos phi_0 - cos phi))`, so the time to reach `phi` is the
    quadrature `t(phi) = int_phi0^phi dphi' / (kappa_J sqrt(2 (cos phi_0 - cos phi')))`.
    `t_bottom = t(pi) = K(cos^2(phi_0 / 2)) / kappa_J`: `J` along `+B`, the first minimum of the
    neutrinos' mass-basis `P_3`. The flavour-basis `P_ee` is smallest later, when `J` points
    along `-z`, at `phi = pi + 2 theta`: `t_ee = t_bottom + t(pi -> pi + 2 theta)` (a smooth
    integrand there: Gauss-Legendre with `nodes` points), `P_ee = (1 + (r cos 2theta - |J|)/2)
    / 2`. The `theta -> 0` forms (`kappa = sqrt(omega (2 mu' - omega))`, the minimum at the
    bottom) are the limits of these."""
    r = omega / mu_prime
    J = np.sqrt(4 - 4 * r * np.cos(2 * theta) + r**2)
    phi0 = np.arccos((2 * np.cos(2 * theta) - r) / J)
    rate = np.sqrt(omega * mu_prime * J)
    if np.pi + 2 * theta >= 2 * np.pi - phi0:
        raise ValueError(
            f"theta={theta:g}: the pendulum turns back (at 2 pi - phi_0) before J reaches -z; "
            "its P_ee minimum is then at the turning point, which this closed form does not give"
        )
    t_bottom = ellipk(np.cos(phi0 / 2) ** 2) / rate
    x, w = np.polynomial.legendre.leggauss(nodes)
    phi = np.pi + theta * (x + 1)  # [pi, pi + 2 theta]
    tail = theta * np.sum(w / np.sqrt(2 * (np.cos(phi0) - np.cos(phi)))) / rate
    return t_bottom, t_bottom + tail, (1 + (r * np.cos(2 * theta) - J) / 2) / 2


def growth_rate(ts, perp, low, high):
    """Least-squares slope of `ln |perp|` over the first stretch where `low < |perp| < high`."""
    ts, perp = np.asarray(ts), np.asarray(perp)
    inside = (perp > low) & (perp < high)
    if inside.sum() < 3:
        return np.nan
    start = np.argmax(inside)
    stop = start + np.argmin(inside[start:]) if not inside[start:].all() else len(ts)
    return np.polyfit(ts[start:stop], np.log(perp[start:stop]), 1)[0]


def pendulum_runs(
    gammas,
    n,
    realizations,
    *,
    beams,
    omega=1.0,
    mu=10.0,
    theta=1e-5,
    t_end=8.0,
    fractions=(0.5, 0.5),
    seed=0,
):
    """The `nu_e` + `nubar_e` gas, inverted ordering, in the mean field and in OILE: growth
    rate (fitted while the transverse length of the neutrino group's mean grows from 1e-3 to
    3e-2... of its final size) and the time of the first minimum of `P_ee` of the neutrinos."""
    B = flavour_B(theta)
    f = jnp.array(fractions)
    angles = oj.Beams(jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])) if beams else oj.Isotropic()
    W12 = 2.0 if beams else 1.0
    mu1, mu2 = mu * fractions[1] * W12, mu * fractions[0] * W12
    rate = kappa(omega, mu1, mu2)
    P0 = jnp.stack([NU_E, NU_E])
    ts = jnp.linspace(0.0, t_end, 1601)
    field = oj.GroupField(
        f,
        jnp.array([omega, omega]),
        oj.System(gamma=0.0, mu=mu, B=B, angles=angles, ordering="inverted"),
        antineutrino=jnp.array([False, True]),
    )
    mf = np.asarray(oj.solve_meanfield(field, P0, ts, rtol=1e-11, atol=1e-13).P)
    low, high = 1e-3, 3e-2
    row = {"kappa": rate, "ts": np.asarray(ts), "mean_field": mf[:, 0, 2]}
    row["rate_mean_field"] = growth_rate(ts, np.hypot(mf[:, 0, 0], mf[:, 0, 1]), low, high)
    row["t_min_mean_field"] = float(ts[np.argmin(mf[:, 0, 2])])
    if fractions[0] == fractions[1]:
        row["t_min_pendulum"] = pendulum_minima(omega, mu1, theta)[1]
    counts = tuple(int(round(n * x)) for x in fractions)
    for gamma in gammas:
        # The mean field plus the deterministic schedule's collision terms (physics.md section
        # 6), which OILE follows to first order in gamma.
        collision = oj.GroupField(
            f,
            jnp.array([omega, omega]),
            oj.System(gamma=gamma, mu=mu, B=B, angles=angles, ordering="inverted"),
            collision="deterministic",
            n=sum(counts),
            antineutrino=jnp.array([False, True]),
        )
        mfc = np.asarray(oj.solve_meanfield(collision, P0, ts, rtol=1e-11, atol=1e-13).P)
        row[f"rate_mean_field_collision_{gamma:g}"] = growth_rate(
            ts, np.hypot(mfc[:, 0, 0], mfc[:, 0, 1]), low, high
        )
        row[f"t_min_mean_field_collision_{gamma:g}"] = float(ts[np.argmin(mfc[:, 0, 2])])
        gas = oj.Gas(counts, jnp.array([omega, omega]), P0, antineutrino=(False, True))
        sol = oj.simulate_gas(
            gas,
            system=oj.System(gamma=gamma, mu=mu, B=B, angles=angles, ordering="inverted"),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(
                key=jax.random.key(seed), t_max=t_end, n_realizations=realizations, dtype=F64
            ),
            saveat=oj.SaveAt(every=max(1, round(0.005 * mu / gamma))),
        )
        mean = sol.group_mean.mean(0)
        row[f"oile_{gamma:g}_ts"] = sol.ts
        row[f"oile_{gamma:g}"] = mean[:, 0, 2]
        row[f"rate_oile_{gamma:g}"] = growth_rate(
            sol.ts, np.hypot(mean[:, 0, 0], mean[:, 0, 1]), low, high
        )
        row[f"t_min_oile_{gamma:g}"] = float(sol.ts[np.argmin(mean[:, 0, 2])])
        row[f"min_oile_{gamma:g}"] = float(mean[:, 0, 2].min())
    return row


def sleeping_top(
    n,
    *,
    omega=1.0,
    theta=1e-5,
    fractions=(0.7, 0.3),
    mus=(10.0, 20.0, 22.0, 26.0, 30.0),
    t_end=25.0,
    oile_mus=(20.0, 26.0),
    oile_gamma=0.004,
    oile_t_end=8.0,
    seed=0,
):
    """Unequal densities: the mean field's largest drop of `P_ee` (neutrinos) over `t_end`
    against the predicted growth rate, across the sleeping-top threshold
    `mu_c = 2 omega / (sqrt f_1 - sqrt f_2)^2`; and the largest transverse length of the
    neutrino group's mean over `oile_t_end`, from the `theta` seed, in the mean field and in
    OILE (N = `n`, `oile_gamma`) on either side of the threshold."""
    B = flavour_B(theta)
    f = jnp.array(fractions)
    P0 = jnp.stack([NU_E, NU_E])
    threshold = 2 * omega / (np.sqrt(fractions[0]) - np.sqrt(fractions[1])) ** 2
    counts = tuple(int(round(n * x / 2)) * 2 for x in fractions)

    def field(mu, gamma=0.0, collision="none"):
        return oj.GroupField(
            f,
            jnp.array([omega, omega]),
            oj.System(gamma=gamma, mu=mu, B=B, ordering="inverted"),
            collision=collision,
            n=None if collision == "none" else sum(counts),
            antineutrino=jnp.array([False, True]),
        )

    drops, rates = [], []
    for mu in mus:
        ts = jnp.linspace(0.0, t_end, 2001)
        P = np.asarray(oj.solve_meanfield(field(mu), P0, ts, rtol=1e-10, atol=1e-12).P)
        drops.append(1 - P[:, 0, 2].min())
        rates.append(kappa(omega, mu * fractions[1], mu * fractions[0]))
    out = {
        "mus": np.asarray(mus),
        "drop": np.asarray(drops),
        "kappa": np.asarray(rates),
        "threshold": threshold,
        "oile_mus": np.asarray(oile_mus),
    }
    gas = oj.Gas(counts, jnp.array([omega, omega]), P0, antineutrino=(False, True))
    perp_mf, perp_mfc, perp_oile = [], [], []
    for mu in oile_mus:
        ts = jnp.linspace(0.0, oile_t_end, 801)
        P = np.asarray(oj.solve_meanfield(field(mu), P0, ts, rtol=1e-10, atol=1e-12).P)
        perp_mf.append(np.hypot(P[:, 0, 0], P[:, 0, 1]).max())
        with_collision = field(mu, oile_gamma, "deterministic")
        P = np.asarray(oj.solve_meanfield(with_collision, P0, ts, rtol=1e-10, atol=1e-12).P)
        perp_mfc.append(np.hypot(P[:, 0, 0], P[:, 0, 1]).max())
        sol = oj.simulate_gas(
            gas,
            system=oj.System(gamma=oile_gamma, mu=mu, B=B, ordering="inverted"),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=jax.random.key(seed), t_max=oile_t_end, dtype=F64),
            saveat=oj.SaveAt(every=round(0.02 * mu / oile_gamma)),
        )
        mean = sol.group_mean[0]
        perp_oile.append(np.hypot(mean[:, 0, 0], mean[:, 0, 1]).max())
    out["max_perp_mean_field"] = np.asarray(perp_mf)
    out[f"max_perp_mean_field_collision_{oile_gamma:g}"] = np.asarray(perp_mfc)
    out[f"max_perp_oile_{oile_gamma:g}"] = np.asarray(perp_oile)
    out["oile_gamma"] = oile_gamma
    return out


# 4. Spectral split ------------------------------------------------------------------------------


def split_frequency(omegas, along_B):
    """Where `B-hat . P` of the final spectrum crosses 0 (linear interpolation)."""
    k = np.flatnonzero(np.diff(np.sign(along_B)) > 0)
    if not len(k):
        return np.nan
    k = k[0]
    x0, x1, y0, y1 = omegas[k], omegas[k + 1], along_B[k], along_B[k + 1]
    return x0 - y0 * (x1 - x0) / (y1 - y0)


def spectral_split(
    gammas,
    modes,
    per,
    *,
    a=0.2,
    b=1.2,
    theta=np.pi / 6,
    mu0=20.0,
    scale=20.0,
    t_end=150.0,
    seed=0,
):
    """A box spectrum `[a, b]` of `modes` groups of `per` `nu_e`, `mu(t) = mu0 exp(-t/scale)`:
    the split frequency of the final spectrum in the mean field, in OILE (stochastic schedule,
    `p = 1` at `t = 0`) and in the mean field plus its collision terms, against
    `(a + b)/2 + cos 2theta (b - a)/2`."""
    B = flavour_B(theta)
    omegas = jnp.asarray(a + (b - a) * (np.arange(modes) + 0.5) / modes)
    expected = (a + b) / 2 + np.cos(2 * theta) * (b - a) / 2
    profile = oj.Exponential(mu0, scale)
    P0 = jnp.broadcast_to(NU_E, (modes, 3))
    field = oj.GroupField(
        jnp.full(modes, 1.0 / modes), omegas, oj.System(gamma=0.0, mu=profile, B=B)
    )
    P = np.asarray(
        oj.solve_meanfield(field, P0, jnp.array([0.0, t_end]), rtol=1e-9, atol=1e-11).P[-1]
    )
    Bhat = np.asarray(B)
    row = {"omegas": np.asarray(omegas), "expected": expected, "mean_field": P @ Bhat}
    row["split_mean_field"] = split_frequency(row["omegas"], row["mean_field"])
    for gamma in gammas:
        dt = gamma / mu0  # p = 1 at t = 0, falling with mu(t)
        gas = oj.Gas((per,) * modes, omegas, P0)
        sol = oj.simulate_gas(
            gas,
            system=oj.System(gamma=gamma, mu=profile, B=B),
            schedule=oj.Stochastic(dt=dt),
            sampling=oj.Sampling(key=jax.random.key(seed), t_max=t_end, dtype=F64),
            saveat=oj.SaveAt(every=round(t_end / dt / 10)),
        )
        final = sol.group_mean[0, -1] @ Bhat
        row[f"oile_{gamma:g}"] = final
        row[f"split_oile_{gamma:g}"] = split_frequency(row["omegas"], final)
        collision = oj.GroupField(
            jnp.full(modes, 1.0 / modes),
            omegas,
            oj.System(gamma=gamma, mu=profile, B=B),
            collision="stochastic",
            n=per * modes,
            dt=dt,
        )
        P = np.asarray(
            oj.solve_meanfield(collision, P0, jnp.array([0.0, t_end]), rtol=1e-9, atol=1e-11).P[-1]
        )
        row[f"split_mean_field_collision_{gamma:g}"] = split_frequency(row["omegas"], P @ Bhat)
    return row


def run(size="default", seed=0) -> dict:
    n, gammas, realizations, modes, per_mode, split_gammas = SIZES[size]
    return {
        "msw": msw(gammas),
        "bipolar": pendulum_runs(gammas, n, realizations, beams=False, seed=seed),
        "sleeping_top": sleeping_top(n, seed=seed),
        "two_beams": pendulum_runs(gammas, n, realizations, beams=True, mu=5.0, seed=seed),
        "spectral_split": spectral_split(split_gammas, modes, per_mode, seed=seed),
        "gammas": np.asarray(gammas),
        "split_gammas": np.asarray(split_gammas),
    }


def plot(data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gammas = data["gammas"]
    fig, axes = plt.subplots(2, 3, figsize=(16, 9), constrained_layout=True)
    ax = axes[0, 0]
    for name, color in (("constant_nu", "tab:blue"), ("constant_nubar", "tab:red")):
        row = data["msw"][name]
        ax.plot(
            row["ts"],
            row["reference"],
            color=color,
            lw=3,
            alpha=0.3,
            label=f"{name[9:]}: closed form",
        )
        ax.plot(row["ts"], row["mean_field"], color=color, ls="--", lw=1, label="mean field")
    ax.set(xlabel=r"$t$", ylabel=r"$P_{ee}$", title="MSW, constant matter")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    row = data["msw"]["adiabatic"]
    ax.plot(row["ts"], row["mean_field"], lw=1, label="mean field")
    ax.plot(row["oile_ts"], row["oile"], lw=1, ls="--", label=rf"OILE $\gamma={gammas[0]:g}$")
    ax.axhline(row["reference"], color="k", ls=":", label="adiabatic limit")
    ax.set(xlabel=r"$t$", ylabel=r"$P_{ee}$", title=r"MSW, $\lambda(t)$ falling")
    ax.legend(fontsize=7)
    for ax, name, title in (
        (axes[0, 2], "bipolar", "bipolar pendulum (isotropic)"),
        (axes[1, 0], "two_beams", "two beams, k = 0"),
    ):
        row = data[name]
        ax.plot(
            row["ts"],
            row["mean_field"],
            color="k",
            lw=1.5,
            label=rf"mean field ($\kappa$ fit {row['rate_mean_field']:.3f}, "
            rf"theory {row['kappa']:.3f})",
        )
        for g in gammas:
            ax.plot(
                row[f"oile_{g:g}_ts"],
                row[f"oile_{g:g}"],
                lw=1,
                label=rf"OILE $\gamma={g:g}$ ($\kappa$ fit {row[f'rate_oile_{g:g}']:.3f})",
            )
        if "t_min_pendulum" in row:
            ax.axvline(row["t_min_pendulum"], color="gray", ls=":", label="pendulum: first minimum")
        ax.set(xlabel=r"$t$", ylabel=r"$P_z$ of the $\nu_e$ group", title=title)
        ax.legend(fontsize=7)
    ax = axes[1, 1]
    row = data["sleeping_top"]
    ax.plot(row["mus"], row["drop"], "o-", label=r"mean field: largest drop of $P_z$")
    ax.plot(row["mus"], row["kappa"] / row["kappa"].max(), "s--", label=r"$\kappa / \kappa_{max}$")
    g = row["oile_gamma"]
    ax.plot(
        row["oile_mus"],
        row["max_perp_mean_field"],
        "kx",
        ms=8,
        label=r"mean field: largest $|\langle P_\perp \rangle|$",
    )
    ax.plot(
        row["oile_mus"],
        row[f"max_perp_oile_{g:g}"],
        "r+",
        ms=12,
        label=rf"OILE $\gamma={g:g}$: largest $|\langle P_\perp \rangle|$",
    )
    ax.axvline(row["threshold"], color="gray", ls=":", label="sleeping-top threshold")
    ax.set(xlabel=r"$\mu$", title="unequal densities (70% / 30%)")
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    row = data["spectral_split"]
    ax.plot(row["omegas"], row["mean_field"], "k-", label="mean field")
    for g in data["split_gammas"]:
        ax.plot(row["omegas"], row[f"oile_{g:g}"], ".", label=rf"OILE $\gamma={g:g}$")
    ax.axvline(row["expected"], color="gray", ls=":", label="lepton-number prediction")
    ax.set(xlabel=r"$\omega$", ylabel=r"$\hat B \cdot P$ at the end", title="spectral split")
    ax.legend(fontsize=7)
    return fig


def describe(data, prefix="") -> dict:
    """`(units, description, axes)` of every dataset of `data`, by its path."""
    texts = {
        "ts": ("1/mu", "save times of the mean field", ("save",)),
        "oile_ts": ("1/mu", "save times of the OILE run", ("save",)),
        "gammas": ("1", "impact parameters of the OILE runs", ("gamma",)),
        "split_gammas": ("1", "impact parameters of the spectral split's OILE runs", ("gamma",)),
        "reference": ("1", "P_ee of the closed form, or its adiabatic limit", None),
        "mean_field": ("1", "the plotted quantity in the mean field", None),
        "oile": ("1", "the plotted quantity in OILE", None),
        "kappa": ("mu", "linear growth rate of the two modes (0: stable)", None),
        "mus": ("mu", "couplings of the sleeping-top scan", ("mu",)),
        "drop": ("1", "largest drop of P_z of the neutrinos in the mean field", ("mu",)),
        "oile_mus": ("mu", "couplings of the sleeping-top runs in OILE", ("mu",)),
        "oile_gamma": ("1", "impact parameter of the sleeping-top runs in OILE", ()),
        "max_perp": ("1", "largest |<P_perp>| of the neutrino group over the run", ("mu",)),
        "max_perp_mean_field_collision": (
            "1",
            "largest |<P_perp>| of the neutrinos, mean field plus collision",
            ("mu",),
        ),
        "threshold": ("mu", "sleeping-top threshold 2 omega / (sqrt f_1 - sqrt f_2)^2", ()),
        "omegas": ("mu", "vacuum frequencies of the spectrum's modes", ("mode",)),
        "expected": ("mu", "split frequency from lepton-number conservation", ()),
        "rate": ("mu", "growth rate fitted to ln |P_perp| of the neutrino group", ()),
        "rate_mean_field_collision": ("mu", "growth rate of the mean field plus collision", ()),
        "t_min_mean_field_collision": ("1/mu", "first minimum, mean field plus collision", ()),
        "t_min": ("1/mu", "time of the first minimum of P_z of the neutrino group", ()),
        "min": ("1", "first minimum of P_z of the neutrino group", ()),
        "split": ("mu", "split frequency where B-hat . P of the final spectrum crosses 0", ()),
        "split_mean_field_collision": ("mu", "split frequency, mean field plus collision", ()),
        "error": ("1", "largest |P_ee - closed form|", ()),
        "final": ("1", "final P_ee averaged over the last tenth of the run", ()),
    }
    out = {}
    for name, value in data.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(describe(value, f"{path}/"))
            continue
        if name.startswith("oile_") and name.endswith("_ts"):
            stem = "oile_ts"
        else:
            stem = next(
                k
                for k in sorted(texts, key=len, reverse=True)
                if name == k or name.startswith(f"{k}_")
            )
        units, text, axes = texts[stem]
        rest = name[len(stem) + 1 :] if stem != "oile_ts" else name[5:-3]
        if rest:
            text = f"{text} ({rest.replace('_', ' ')})"
        ndim = np.ndim(value)
        axes = axes if axes is not None and len(axes) == ndim else ("save",) if ndim == 1 else ()
        if name in ("mean_field", "oile") or name.startswith("oile_0") and ndim == 1:
            axes = ("mode",) if "spectral_split" in path else ("save",)
        if path.startswith("sleeping_top/") and ndim == 1:
            axes = ("mu",)
        out[path] = (units, text, axes)
    return out


def summary(data) -> list[tuple[str, float, float, list[float]]]:
    """(problem, reference, mean field, OILE at each gamma) rows."""
    g = data["gammas"]
    rows = []
    for name in ("constant_nu", "constant_nubar"):
        d = data["msw"][name]
        rows.append(
            (
                f"MSW {name[9:]}: max |P_ee error|",
                0.0,
                d["error_mean_field"],
                [d[f"error_oile_{x:g}"] for x in g],
            )
        )
    d = data["msw"]["adiabatic"]
    rows.append(
        (
            "MSW adiabatic: final P_ee",
            d["reference"],
            d["final_mean_field"],
            [d["final_oile"]] + [np.nan] * (len(g) - 1),
        )
    )
    for name in ("bipolar", "two_beams"):
        d = data[name]
        rows.append(
            (
                f"{name}: growth rate",
                d["kappa"],
                d["rate_mean_field"],
                [d[f"rate_oile_{x:g}"] for x in g],
            )
        )
        rows.append(
            (
                "  mean field + collision at gamma",
                np.nan,
                np.nan,
                [d[f"rate_mean_field_collision_{x:g}"] for x in g],
            )
        )
    d = data["sleeping_top"]
    for k, mu in enumerate(d["oile_mus"]):
        rows.append(
            (
                f"sleeping top mu={mu:g}, gamma {d['oile_gamma']:g}: max |P_perp|",
                float(d["kappa"][list(d["mus"]).index(mu)]),
                d["max_perp_mean_field"][k],
                [d[f"max_perp_oile_{d['oile_gamma']:g}"][k]],
            )
        )
        rows.append(
            (
                "  mean field + collision at gamma",
                np.nan,
                np.nan,
                [d[f"max_perp_mean_field_collision_{d['oile_gamma']:g}"][k]],
            )
        )
    d = data["bipolar"]
    rows.append(
        (
            "bipolar: first minimum",
            d["t_min_pendulum"],
            d["t_min_mean_field"],
            [d[f"t_min_oile_{x:g}"] for x in g],
        )
    )
    d = data["spectral_split"]
    rows.append(
        (
            "spectral split: omega_c",
            d["expected"],
            d["split_mean_field"],
            [d[f"split_oile_{x:g}"] for x in data["split_gammas"]],
        )
    )
    rows.append(
        (
            "  mean field + collision at gamma",
            np.nan,
            np.nan,
            [d[f"split_mean_field_collision_{x:g}"] for x in data["split_gammas"]],
        )
    )
    return rows


def main(argv=None) -> int:
    parser = common.parser(__doc__, SIZES)
    args = parser.parse_args(argv)
    png, h5 = common.outputs(parser, args, "standard_problems.png", "standard_problems.h5")
    start = time.perf_counter()
    data = run(size=args.size, seed=args.seed)
    elapsed = time.perf_counter() - start
    config = {
        "experiment": "standard_problems",
        "size": args.size,
        "seed": args.seed,
        "sizes": SIZES[args.size],
    }
    oj.write_h5(h5, data, attrs={"config": config}, force=args.force, describe=describe(data))
    plot(data).savefig(png, dpi=110)
    g = data["gammas"]
    print("OILE columns: gammas", list(g), "(spectral split:", list(data["split_gammas"]), ")")
    print(
        f"{'problem':<36}{'reference':>12}{'mean field':>12}"
        + "".join(f"{f'OILE {x:g}':>13}" for x in g)
    )
    for name, ref, mf, oile in summary(data):
        print(f"{name:<36}{ref:>12.5g}{mf:>12.5g}" + "".join(f"{v:>13.5g}" for v in oile))
    print(f"ran in {elapsed:.1f} s; wrote {png} and {h5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
