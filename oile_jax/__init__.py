"""oile_jax: once-in-a-lifetime-encounter (OILE) models of dense neutrino gases, on JAX.

Conventions and closed forms: see SPEC (section numbers are cited in the docstrings).
The library never changes JAX's global configuration: enable float64 yourself with
`jax.config.update("jax_enable_x64", True)` where you need it.
"""

from ._angles import (
    AbstractAngleModel as AbstractAngleModel,
)
from ._angles import (
    FixedAngle as FixedAngle,
)
from ._angles import (
    FixedVelocities as FixedVelocities,
)
from ._angles import (
    Isotropic as Isotropic,
)
from ._encounter import (
    encounter as encounter,
)
from ._encounter import (
    encounter_rho as encounter_rho,
)
from ._encounter import (
    encounter_vacuum as encounter_vacuum,
)
from ._encounter import (
    pair_unitary as pair_unitary,
)
from ._encounter import (
    partial_traces as partial_traces,
)
from ._encounter import (
    swap_matrix as swap_matrix,
)
from ._encounter import (
    vacuum_rotation as vacuum_rotation,
)
from ._equilibrium import (
    Equilibrium as Equilibrium,
)
from ._equilibrium import (
    endpoint_frequency as endpoint_frequency,
)
from ._equilibrium import (
    equilibrium_branches as equilibrium_branches,
)
from ._equilibrium import (
    precession_equilibrium as precession_equilibrium,
)
from ._foreground import (
    ForegroundSolution as ForegroundSolution,
)
from ._foreground import (
    simulate_foreground as simulate_foreground,
)
from ._gas import Gas as Gas
from ._gas import Observables as Observables
from ._io import read_h5 as read_h5
from ._io import write_h5 as write_h5
from ._manybody import (
    ManyBodySolution as ManyBodySolution,
)
from ._manybody import (
    ManyBodyState as ManyBodyState,
)
from ._manybody import (
    all_to_all as all_to_all,
)
from ._manybody import (
    simulate_manybody as simulate_manybody,
)
from ._master import (
    encounter_averages as encounter_averages,
)
from ._master import (
    foreground_mean as foreground_mean,
)
from ._master import (
    master_rates as master_rates,
)
from ._meanfield import (
    ForegroundField as ForegroundField,
)
from ._meanfield import (
    GroupField as GroupField,
)
from ._meanfield import (
    MeanFieldSolution as MeanFieldSolution,
)
from ._meanfield import (
    MultiAngleField as MultiAngleField,
)
from ._meanfield import (
    group_energy as group_energy,
)
from ._meanfield import (
    lepton_number as lepton_number,
)
from ._meanfield import (
    multi_angle_energy as multi_angle_energy,
)
from ._meanfield import (
    solve_meanfield as solve_meanfield,
)
from ._plot import plot_foreground as plot_foreground
from ._plot import plot_two_groups as plot_two_groups
from ._schedule import (
    AbstractSchedule as AbstractSchedule,
)
from ._schedule import (
    Deterministic as Deterministic,
)
from ._schedule import (
    Stochastic as Stochastic,
)
from ._simulate_gas import GasSolution as GasSolution
from ._simulate_gas import simulate_gas as simulate_gas
from ._state import (
    bloch_to_rho as bloch_to_rho,
)
from ._state import (
    entropy as entropy,
)
from ._state import (
    mixing_vector as mixing_vector,
)
from ._state import (
    nu_e as nu_e,
)
from ._state import (
    nu_x as nu_x,
)
from ._state import (
    pauli as pauli,
)
from ._state import (
    rho_to_bloch as rho_to_bloch,
)

__version__ = "0.1.0"
