"""U-Hop: a learned kernel that separates the memories (Stage I), then kernelized sparse Hopfield retrieval (Stage II).

Wu et al. (2024) learn a linear feature map ``Phi(u) = W u`` (F x D, F >= D) that spreads the stored patterns apart
by minimising a separation loss, normalise the rows of ``W``, and retrieve with the energy of eq. 2.2 under the
kernel ``K(u, v) = <W u, W v>``:

- :mod:`.kernel`: :func:`init_kernel` (``"gaussian"``, ``"identity"``, ``"orthogonal"``), :func:`normalize_rows`,
  :func:`unit_features`.
- :mod:`.losses`: :func:`separation_loss` (``"average"`` eq. 2.6, ``"max"`` App. G.2, ``"deep"`` eq. 3.2),
  computed in blocks of rows.
- :mod:`.fit`: :func:`fit_kernel`, Stage I with any optax optimiser in one jitted scan (Alg. 1, lines 1-4).
- :mod:`.retrieval`: :func:`uhop_retrieve`, Stage II through :func:`dammem.retrieve` (Alg. 1, lines 5-8), and the
  exact-retrieval conditions :func:`exact_retrieval_mask` (eq. 2.9) and :func:`separation_condition_mask`
  (eq. 2.10).

The kernel as a similarity is :func:`dammem.similarities.kernelize` ``("dot", W)``; any other base similarity can
be kernelized the same way.

Non-finite inputs propagate: a NaN or inf entry in the memories, ``W`` or the queries makes
:func:`separation_loss`, the ``W`` and losses of :func:`fit_kernel` and the states and energies of
:func:`uhop_retrieve` NaN (as the energies of :mod:`dammem.energies` do); it is never read as a zero row. The
boolean masks (:func:`exact_retrieval_mask`, :func:`separation_condition_mask`) cannot hold a NaN: they raise
``ValueError`` for concrete non-finite memories or ``W`` (traced ones give False).

Example:
  >>> import jax
  >>> from dammem import uhop
  >>> memories = jax.random.uniform(jax.random.key(1), (20, 16))
  >>> fit = uhop.fit_kernel(memories, steps=50, key=jax.random.key(0))  # Stage I
  >>> out = uhop.uhop_retrieve(memories.at[:, 8:].set(0.0), memories, fit.weight)  # Stage II, half the entries hidden
  >>> out.x.shape
  (20, 16)

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from dammem.uhop._checks import INITS as INITS
from dammem.uhop._checks import LOSSES as LOSSES
from dammem.uhop.fit import DEFAULT_OPTIMIZER as DEFAULT_OPTIMIZER
from dammem.uhop.fit import KernelFit as KernelFit
from dammem.uhop.fit import fit_kernel as fit_kernel
from dammem.uhop.kernel import init_kernel as init_kernel
from dammem.uhop.kernel import normalize_rows as normalize_rows
from dammem.uhop.kernel import unit_features as unit_features
from dammem.uhop.losses import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from dammem.uhop.losses import separation_loss as separation_loss
from dammem.uhop.retrieval import exact_retrieval_mask as exact_retrieval_mask
from dammem.uhop.retrieval import kernel_energy as kernel_energy
from dammem.uhop.retrieval import kernel_update as kernel_update
from dammem.uhop.retrieval import separation_condition_mask as separation_condition_mask
from dammem.uhop.retrieval import uhop_retrieve as uhop_retrieve

__all__ = [
    "INITS",
    "LOSSES",
    "DEFAULT_OPTIMIZER",
    "DEFAULT_CHUNK_SIZE",
    "KernelFit",
    "fit_kernel",
    "init_kernel",
    "normalize_rows",
    "unit_features",
    "separation_loss",
    "uhop_retrieve",
    "kernel_energy",
    "kernel_update",
    "exact_retrieval_mask",
    "separation_condition_mask",
]
