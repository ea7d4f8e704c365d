"""DrDAM: a dense associative memory stored in one fixed-size random-feature vector (Hoover et al. (2024)).

Modules: :mod:`~dammem.drdam.projections` (random projections: regenerated gaussian, orthogonal, structured SORF,
materialized), :mod:`~dammem.drdam.features` (the cos / sincos / exp / expexp feature maps of the RBF kernel),
:mod:`~dammem.drdam.memory` (encode / add / remove a memory, the energy with its custom derivative, the log clip).

Example:
  >>> import jax, jax.numpy as jnp, dammem
  >>> from dammem import drdam
  >>> memories = jax.random.bernoulli(jax.random.key(0), 0.5, (20, 64)) / 8.0
  >>> features = drdam.make_features("sincos", 64, 4096, key=jax.random.key(1))
  >>> T = drdam.encode(features, memories, 10.0)
  >>> out = dammem.retrieve(drdam.energy, memories[0] * 0.9, (T, features, 10.0), step_size=0.1)

References:
  - B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov (2024). Dense Associative Memory Through the Lens of
    Random Features. NeurIPS 2024.
"""

from dammem.drdam.features import FEATURE_KINDS as FEATURE_KINDS
from dammem.drdam.features import PROJECTIONS as PROJECTIONS
from dammem.drdam.features import Features as Features
from dammem.drdam.features import feature_map as feature_map
from dammem.drdam.features import make_features as make_features
from dammem.drdam.memory import DEFAULT_EPS as DEFAULT_EPS
from dammem.drdam.memory import Q_KINDS as Q_KINDS
from dammem.drdam.memory import Memory as Memory
from dammem.drdam.memory import add as add
from dammem.drdam.memory import clip_fraction as clip_fraction
from dammem.drdam.memory import encode as encode
from dammem.drdam.memory import energy as energy
from dammem.drdam.memory import remove as remove
