"""Flax NNX layers over dammem's pure functions.

Every layer holds parameters and calls a pure function of the package; no math lives only in a layer.

- Hopfield attention (:func:`dammem.attention.hopfield_attention`): :class:`Hopfield` (a drop-in for
  ``flax.nnx.MultiHeadAttention`` with any separation, learnable per-head beta and alpha, several update steps),
  :class:`HopfieldPooling` (learned queries), :class:`HopfieldLayer` (learned stored patterns).
- :class:`UHopHopfield`: Wu et al. (2024) eq. 3.1, a learned kernel in front of :class:`Hopfield`;
  :mod:`dammem.nn.training` runs their Algorithm 2 (:func:`alternating_step`).
- :class:`EnergyDescent`: differentiable fixed-step retrieval of any dammem energy (:func:`dammem.retrieve`).
- :class:`DrDAMMemory`: the random-feature memory of :mod:`dammem.drdam` with its features and ``T`` as
  non-trainable state.
- :class:`KropCodebookLayer`: trainable KROP angles, fixed signs; hard and soft clean-up (:mod:`dammem.vsa`).
- Non-trainable variable types (:class:`MemoryState`, :class:`RandomFeatures`, :class:`FixedSigns`), skipped by
  ``nnx.Optimizer(..., wrt=nnx.Param)``.
- :func:`save_checkpoint` / :func:`restore_checkpoint`: orbax checkpoints of any of these modules.
"""

from dammem.nn.attention import Hopfield as Hopfield
from dammem.nn.checkpoint import restore_checkpoint as restore_checkpoint
from dammem.nn.checkpoint import save_checkpoint as save_checkpoint
from dammem.nn.drdam import DrDAMMemory as DrDAMMemory
from dammem.nn.energy import EnergyDescent as EnergyDescent
from dammem.nn.pooling import HopfieldLayer as HopfieldLayer
from dammem.nn.pooling import HopfieldPooling as HopfieldPooling
from dammem.nn.training import MODEL_PARAMS as MODEL_PARAMS
from dammem.nn.training import KernelParam as KernelParam
from dammem.nn.training import alternating_step as alternating_step
from dammem.nn.training import separation_step as separation_step
from dammem.nn.training import supervised_step as supervised_step
from dammem.nn.uhop import UHopHopfield as UHopHopfield
from dammem.nn.variables import FixedSigns as FixedSigns
from dammem.nn.variables import MemoryState as MemoryState
from dammem.nn.variables import RandomFeatures as RandomFeatures
from dammem.nn.vsa import KropCodebookLayer as KropCodebookLayer
