"""Array aliases and the dimension legend used in every docstring of dammem.

Dimension legend:

- ``K``: stored memories (patterns)                     - ``D``: pattern dimension
- ``Y``: random features                                - ``F``: feature width of a kernel map
- ``B``: queries (batch)                                - ``N``: codebook size / number of scores
- ``M``: stored items in a key-value memory             - ``T``: steps
- ``H``: attention heads

Shapes are written as jaxtyping strings (``Float[Array, "K D"]``); they are checked at run time in the tests only.
"""

from __future__ import annotations

from typing import Union

import jax
import numpy as np

Array = jax.Array
ArrayLike = Union[jax.Array, np.ndarray, float, int]
PRNGKey = jax.Array

__all__ = ["Array", "ArrayLike", "PRNGKey"]
