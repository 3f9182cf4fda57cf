"""The gas (physics.md sections 2-4): N neutrinos in groups, meeting in random pairs.

Every step pairs all N neutrinos by a uniformly random perfect matching and applies the
encounter to each pair:
- `Stochastic(dt)`: each pair meets with probability `p = mu dt / gamma` (so each neutrino meets
  a uniformly random partner with probability p); vacuum rotation by `omega_g dt` about `B`,
  split symmetrically around the encounters.
- `Deterministic(vacuum=...)`: every pair meets; a round lasts `gamma / mu`; vacuum split around
  the encounters or evolved inside them (`encounter_vacuum`).
A neutrino never meets itself, and N must be even.

The package, one part a module, data flowing down the list:
- `model`: `Gas` and its per-group tables;
- `observe`: `Observables` and the one reducer;
- `kernel`: `Slots` and `GasKernel`, the one step (shuffle, pair angles, encounters, vacuum);
- `engine`: `AbstractGasEngine`, the interface the driver runs;
- `dense`, `sharded`: the final engines (the sharded one runs the kernel in every shard);
- `checkpoint`: one format, one fingerprint;
- `driver`: `drive`, `simulate_gas`; `sweep`: `sweep_gas`, a dense engine vmapped over points;
- `differentiable`: `evolve_gas`, the dense engine as one pure function (no host loop) for
  `jax.grad` and `jax.jit`.
"""

from .differentiable import GasTrajectory as GasTrajectory, evolve_gas as evolve_gas
from .driver import GasSolution as GasSolution, simulate_gas as simulate_gas
from .model import Gas as Gas
from .observe import Observables as Observables, observe as observe
from .sweep import sweep_gas as sweep_gas
