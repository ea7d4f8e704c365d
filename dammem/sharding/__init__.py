"""Memory- and batch-parallel retrieval over a device mesh (``jax.sharding``, ``jax.shard_map``).

Shape legend: ``K`` memories, ``D`` pattern dimension, ``B`` queries, ``F`` feature width of a DrDAM memory;
``n`` devices along the mesh axis that splits the memories (``K_loc = K / n`` per device). Attention uses the
layout of :func:`dammem.attention.hopfield_attention`: ``Q`` queries, ``S`` stored patterns (keys), ``H`` heads,
``D`` key width, ``D_v`` value width.

The single-device functions stay the default; everything here computes the same numbers with the data spread over
the devices of a :class:`jax.sharding.Mesh` (one host with several GPUs or TPUs, or several hosts after
``jax.distributed.initialize()``; on a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives 8).

Memory parallel: the memories (K, D) are split along ``K`` over one mesh axis; every device scores the queries
against its own memories and only reductions cross devices, so a memory shard is never gathered onto one device.
The separation runs distributed (:func:`distributed_separation`, :func:`distributed_conjugate`): a ``pmax`` of the
row maxima, then ``psum``-ed partial sums, ``Z`` for softmax and, for alpha-entmax (Peters et al. (2019), Prop. 1;
Wu et al. (2024), eq. D.1), a threshold search across devices whose per-element maths is the single-device solver's;
the read-out ``Xi^T p = sum_d Xi_d^T p_d`` is one more ``psum``.

With these, the modern Hopfield energy and update (Ramsauer et al. (2021), eq. 3; Wu et al. (2024), eq. 1.1), the
generalized sparse Hopfield energy and update (Wu et al. (2024), eqs. 2.2-2.4) and the MrDAM RBF energy and update
(Hoover et al. (2024), eqs. 11 and 18) run on sharded memories, as one update, one energy or a whole retrieval loop
inside one ``shard_map``. Keys and values of :func:`sharded_hopfield_attention` are split along ``S`` in the same
way, and :func:`sharded_encode` stores sharded patterns in a DrDAM memory: each device encodes its own patterns and
the feature vectors are summed, ``T = sum_d T_d`` (Hoover et al. (2024), eq. 9); the exponential kinds hold
``log T`` and reduce with a log-sum-exp.

Derivatives (first order, in the scores and in alpha) are those of the single-device separations (the threshold's
implicit derivative, Peters et al. (2019), Prop. 2); second derivatives of the sparse separations are not provided.
Differentiate under ``jax.jit``; outside it, a mesh with Explicit axes (the default of ``jax.make_mesh``) needs
``with jax.set_mesh(mesh):`` (JAX places the cotangents of explicitly sharded results on that mesh).

Batch parallel: :func:`shard_batch` runs a function of one example over a batch split along a mesh axis (VSA and
KROP batches, independent trials of an experiment), ``jax.vmap`` semantics on every device.

Several processes (``jax.distributed``; several hosts, or ``python -m dammem.launch`` on one machine): every
function works on a mesh over the devices of all processes. Each process supplies only its own rows of a split
array (:func:`process_slice` names them, :func:`distribute_process_local` builds the global array from them, so no
process ever holds the whole memory set); :func:`distribute` instead takes the same whole array on every process.
Queries, beta and other replicated inputs are the same NumPy or JAX values on every process. Results: the
updates, energies and retrieved states are replicated (every process reads them with ``numpy.asarray``) unless
``batch_axis`` splits the queries, in which case they stay split along it; attention outputs and DrDAM memories
are replicated; :func:`gather` returns any of them whole on every process. Checks that need a value no process
holds whole (a mask hiding every memory) are skipped there, as for traced values.

Numerical edge cases: masked memories (``mask=False``) get weight 0; a query that sees no memory gets zero weights,
a zero update and energy ``+inf``; a concrete mask that hides every memory is refused.

Modules: ``_mesh`` (checks and placement), ``_process`` (several processes), ``_separation``, ``_models`` (the
per-device model pieces and the one preparation of memory arguments), ``_memory``, ``_attention``, ``_encode``,
``_batch``.

References:
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
  - Peters, Niculae, Martins (2019). Sparse Sequence-to-Sequence Models. ACL.
  - Michelot (1986). A finite algorithm for finding the projection of a point onto the canonical simplex of R^n.
    Journal of Optimization Theory and Applications.
"""

from dammem.sharding._attention import sharded_hopfield_attention as sharded_hopfield_attention
from dammem.sharding._batch import all_gather_shapes as all_gather_shapes
from dammem.sharding._batch import shard_batch as shard_batch
from dammem.sharding._encode import sharded_encode as sharded_encode
from dammem.sharding._memory import sharded_energy as sharded_energy
from dammem.sharding._memory import sharded_retrieve as sharded_retrieve
from dammem.sharding._memory import sharded_update as sharded_update
from dammem.sharding._mesh import distribute as distribute
from dammem.sharding._models import MODELS as MODELS
from dammem.sharding._process import distribute_process_local as distribute_process_local
from dammem.sharding._process import gather as gather
from dammem.sharding._process import process_slice as process_slice
from dammem.sharding._separation import SEPARATION_NAMES as SEPARATION_NAMES
from dammem.sharding._separation import distributed_conjugate as distributed_conjugate
from dammem.sharding._separation import distributed_separation as distributed_separation

__all__ = [
    "MODELS",
    "SEPARATION_NAMES",
    "distribute",
    "process_slice",
    "distribute_process_local",
    "gather",
    "distributed_separation",
    "distributed_conjugate",
    "sharded_update",
    "sharded_energy",
    "sharded_retrieve",
    "sharded_hopfield_attention",
    "sharded_encode",
    "shard_batch",
    "all_gather_shapes",
]
