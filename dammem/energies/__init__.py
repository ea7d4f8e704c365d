"""Pure energy functions of one unbatched query (callers ``jax.vmap``) and their fixed-point maps.

- :mod:`.mrdam`: MrDAM RBF and EDP energies and the RBF update (Hoover et al. (2024), eqs. 7, 11, 18).
- :mod:`.hopfield`: modern, generalized sparse (alpha in [1, 2]) and polynomial energies and the retrieval update;
  every similarity the energy accepts makes the update its CCCP step (Wu et al. (2024), eqs. 2.2-2.4).
- :mod:`.classical`: Hebbian Hopfield networks and the one-step memories (Hsu (2025)).

References:
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Hsu (2025). Associative memories. Lecture notes, COMS 6998-7, Columbia University.
"""

from dammem.energies.classical import ClassicalRetrieval as ClassicalRetrieval
from dammem.energies.classical import async_sweep as async_sweep
from dammem.energies.classical import bipolar_sign as bipolar_sign
from dammem.energies.classical import classical_energy as classical_energy
from dammem.energies.classical import classical_retrieve as classical_retrieve
from dammem.energies.classical import hebbian_weights as hebbian_weights
from dammem.energies.classical import hetero_weights as hetero_weights
from dammem.energies.classical import one_step_modern as one_step_modern
from dammem.energies.classical import sync_update as sync_update
from dammem.energies.hopfield import modern_hopfield_energy as modern_hopfield_energy
from dammem.energies.hopfield import polynomial_energy as polynomial_energy
from dammem.energies.hopfield import sparse_hopfield_energy as sparse_hopfield_energy
from dammem.energies.hopfield import sparse_hopfield_update as sparse_hopfield_update
from dammem.energies.mrdam import edp_energy as edp_energy
from dammem.energies.mrdam import rbf_energy as rbf_energy
from dammem.energies.mrdam import rbf_update as rbf_update
