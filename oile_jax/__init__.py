"""oile_jax: once-in-a-lifetime-encounter (OILE) models of dense neutrino gases, on JAX.

Conventions and closed forms: see SPEC (section numbers are cited in the docstrings).
The library never changes JAX's global configuration: enable float64 yourself with
`jax.config.update("jax_enable_x64", True)` where you need it.
"""

from ._angles import (
    AbstractAngleModel as AbstractAngleModel,
    FixedAngle as FixedAngle,
    FixedVelocities as FixedVelocities,
    Isotropic as Isotropic,
)
from ._encounter import (
    encounter as encounter,
    encounter_rho as encounter_rho,
    encounter_vacuum as encounter_vacuum,
    pair_unitary as pair_unitary,
    partial_traces as partial_traces,
    swap_matrix as swap_matrix,
    vacuum_rotation as vacuum_rotation,
)
from ._foreground import (
    ForegroundSolution as ForegroundSolution,
    simulate_foreground as simulate_foreground,
)
from ._io import read_h5 as read_h5, write_h5 as write_h5
from ._master import (
    encounter_averages as encounter_averages,
    foreground_mean as foreground_mean,
    master_rates as master_rates,
)
from ._plot import plot_foreground as plot_foreground
from ._schedule import (
    AbstractSchedule as AbstractSchedule,
    Deterministic as Deterministic,
    Stochastic as Stochastic,
)
from ._state import (
    bloch_to_rho as bloch_to_rho,
    entropy as entropy,
    mixing_vector as mixing_vector,
    nu_e as nu_e,
    nu_x as nu_x,
    pauli as pauli,
    rho_to_bloch as rho_to_bloch,
)

__version__ = "0.1.0"
