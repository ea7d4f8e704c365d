"""Flax NNX layers over dammem's pure functions: Hopfield attention, pooling and lookup.

Every layer holds parameters and calls a pure function of the package (here
:func:`dammem.attention.hopfield_attention`); no math lives only in a layer.
"""

from dammem.nn.attention import Hopfield as Hopfield
from dammem.nn.attention import HopfieldLayer as HopfieldLayer
from dammem.nn.attention import HopfieldPooling as HopfieldPooling
