"""oile_jax: once-in-a-lifetime-encounter (OILE) models of dense neutrino gases, on JAX.

Conventions and closed forms: `docs/physics.md` (its sections are cited in the docstrings).
The library never changes JAX's global configuration: enable float64 yourself with
`jax.config.update("jax_enable_x64", True)` where you need it.
"""

import os as _os
import sys as _sys

if _sys.argv and _os.path.basename(_sys.argv[0]) == "oile":  # the `oile` command only

    def _interrupted_while_loading(signum, frame):
        # Ctrl-C in the second or two the library takes to load, before `oile`'s own handler
        # (`_cli.main`) runs: one line and status 130, as anywhere later, not a traceback.
        _os.write(2, b"\noile: interrupted\n")
        _os._exit(130)

    import signal as _signal

    _signal.signal(_signal.SIGINT, _interrupted_while_loading)

from ._equilibria.equilibrium import (
    Equilibrium as Equilibrium,
    GasPrecessionState as GasPrecessionState,
    PathSolution as PathSolution,
    endpoint_frequency as endpoint_frequency,
    equilibrium_branches as equilibrium_branches,
    gas_precession_state as gas_precession_state,
    kicked_path as kicked_path,
    miscidynamic_path as miscidynamic_path,
    path_from_gas as path_from_gas,
    precession_equilibrium as precession_equilibrium,
)
from ._foreground.master import (
    encounter_averages as encounter_averages,
    foreground_mean as foreground_mean,
    master_rates as master_rates,
)
from ._foreground.model import (
    ForegroundSolution as ForegroundSolution,
    simulate_foreground as simulate_foreground,
)
from ._gas import (
    Gas as Gas,
    GasSolution as GasSolution,
    GasTrajectory as GasTrajectory,
    Observables as Observables,
    evolve_gas as evolve_gas,
    simulate_gas as simulate_gas,
    sweep_gas as sweep_gas,
)
from ._manybody.statevector import (
    ManyBodySolution as ManyBodySolution,
    ManyBodyState as ManyBodyState,
    all_to_all as all_to_all,
    simulate_manybody as simulate_manybody,
)
from ._meanfield.fields import (
    AbstractCollision as AbstractCollision,
    AbstractMeanField as AbstractMeanField,
    DeterministicCollision as DeterministicCollision,
    ForegroundField as ForegroundField,
    GroupField as GroupField,
    MeanFieldSolution as MeanFieldSolution,
    MultiAngleField as MultiAngleField,
    NoCollision as NoCollision,
    StochasticCollision as StochasticCollision,
    group_energy as group_energy,
    lepton_number as lepton_number,
    multi_angle_energy as multi_angle_energy,
    solve_meanfield as solve_meanfield,
)
from ._meanfield.stability import (
    MAX_DENSE as MAX_DENSE,
    LinearStability as LinearStability,
    linear_stability as linear_stability,
)
from ._output.io import read_h5 as read_h5, write_h5 as write_h5
from ._output.labelled import to_xarray as to_xarray
from ._output.plot import (
    plot_flavours as plot_flavours,
    plot_foreground as plot_foreground,
    plot_two_groups as plot_two_groups,
)
from ._physics.encounter import (
    AbstractEncounter as AbstractEncounter,
    Swap as Swap,
    encounter as encounter,
    encounter_antineutrino as encounter_antineutrino,
    encounter_rho as encounter_rho,
    encounter_vacuum as encounter_vacuum,
    pair_unitary as pair_unitary,
    partial_traces as partial_traces,
    swap_matrix as swap_matrix,
    vacuum_rotation as vacuum_rotation,
)
from ._physics.flavours import (
    NUFIT_6_0 as NUFIT_6_0,
    flavour_axis as flavour_axis,
    gell_mann as gell_mann,
    pmns as pmns,
    pmns_vacuum as pmns_vacuum,
    structure_constants as structure_constants,
)
from ._physics.opacities import (
    AbstractOpacities as AbstractOpacities,
    Opacities as Opacities,
    Reemission as Reemission,
)
from ._physics.profiles import (
    AbstractProfile as AbstractProfile,
    Constant as Constant,
    Exponential as Exponential,
    Samples as Samples,
)
from ._physics.states import (
    bloch_to_rho as bloch_to_rho,
    bloch_vector as bloch_vector,
    density_matrix as density_matrix,
    eigenvalues as eigenvalues,
    entropy as entropy,
    flavour_state as flavour_state,
    mixing_vector as mixing_vector,
    nu_e as nu_e,
    nu_x as nu_x,
    occupations as occupations,
    pauli as pauli,
    rho_to_bloch as rho_to_bloch,
    von_neumann_entropy as von_neumann_entropy,
)
from ._physics.system import System as System
from ._sampling.angles import (
    AbstractAngleModel as AbstractAngleModel,
    Axisymmetric as Axisymmetric,
    Beams as Beams,
    FixedAngle as FixedAngle,
    FixedVelocities as FixedVelocities,
    Isotropic as Isotropic,
    angle_grid as angle_grid,
    mode_grid as mode_grid,
)
from ._sampling.options import (
    Checkpoint as Checkpoint,
    Sampling as Sampling,
    SaveAt as SaveAt,
    Sharding as Sharding,
)
from ._sampling.schedule import (
    AbstractSchedule as AbstractSchedule,
    Deterministic as Deterministic,
    Stochastic as Stochastic,
)
from ._support.cache import use_compilation_cache as use_compilation_cache
from ._version import __version__ as __version__
