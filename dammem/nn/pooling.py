"""Hopfield pooling and lookup in Flax NNX: ``HopfieldPooling`` (learned queries) and ``HopfieldLayer`` (learned
stored patterns), each a :class:`dammem.nn.Hopfield` with learned patterns in one of its inputs.

Shape legend: ``...`` batch axes, ``S`` inputs of a set, ``Q`` query positions, ``H`` heads, ``F`` input features,
``F_out`` output features, ``M`` learned stored patterns, ``P`` learned queries.

Both take every option of :class:`dammem.nn.Hopfield` (except ``decode``); their errors name the class and the
caller's argument (``inputs``), and ``trainable=False`` keeps the learned queries / patterns / targets fixed (held
as :class:`dammem.nn.MemoryState`, which optimizers over ``nnx.Param`` do not move).

References:
  - Ramsauer, Schäfl, Lehner, Seidl, Widrich, Adler, Gruber, Holzleitner, Pavlović, Sandve, Greiff, Kreil, Kopp,
    Klambauer, Brandstetter, Hochreiter (2021). Hopfield Networks is All You Need. ICLR.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import ClassVar

import jax.numpy as jnp
from flax import nnx
from flax.typing import Initializer
from jaxtyping import Float

from dammem._types import Array, ArrayLike
from dammem._validate import check_bool, check_int
from dammem.nn.attention import Hopfield
from dammem.nn.variables import MemoryState

__all__ = ["HopfieldPooling", "HopfieldLayer"]

_normal_init = nnx.initializers.normal(1.0)


@contextlib.contextmanager
def _named(context: str, renames: Mapping[str, str]) -> Iterator[None]:
    """Re-raise the inner :class:`Hopfield`'s errors under the caller's class and argument names."""
    try:
        yield
    except (ValueError, TypeError) as err:
        message = str(err)
        if not message.startswith("Hopfield: "):
            raise
        message = f"{context}: " + message[len("Hopfield: ") :]
        for inner, outer in renames.items():
            message = re.sub(rf"\b{inner}\b", outer, message)
        raise type(err)(message) from None


def _check_inputs(inputs: ArrayLike, features: int, context: str) -> Array:
    inputs = jnp.asarray(inputs)
    if inputs.ndim < 2:
        raise ValueError(f"{context}: inputs must have shape (batch..., length, features), got {tuple(inputs.shape)}")
    if inputs.shape[-1] != features:
        raise ValueError(f"{context}: inputs has {inputs.shape[-1]} features, expected {features}")
    return inputs


class _LearnedPatterns(nnx.Module):
    """A :class:`Hopfield` (``self.hopfield``) with learned patterns in one of its inputs: the checks and the
    delegation that :class:`HopfieldPooling` and :class:`HopfieldLayer` share."""

    hopfield: Hopfield
    _renames: ClassVar[Mapping[str, str]]  # the inner layer's argument names -> the caller's, in error messages

    def _init_hopfield(self, num_heads: int, in_features: int, trainable: bool, rngs: nnx.Rngs, kwargs: dict):
        """Build the inner layer; return the variable type of the learned patterns."""
        context = type(self).__name__
        self.trainable = check_bool(trainable, "trainable", context)
        if "decode" in kwargs:
            raise TypeError(f"{context}: decode is not an option of this layer")
        with _named(context, {}):
            self.hopfield = Hopfield(num_heads, in_features, rngs=rngs, **kwargs)
        return nnx.Param if trainable else MemoryState

    @property
    def beta(self) -> Array:
        """The inner layer's beta (an array)."""
        return self.hopfield.beta

    @property
    def alpha(self) -> Array | None:
        """The inner layer's alpha (an array; None for a callable separation)."""
        return self.hopfield.alpha

    def _retrieve(self, inputs_q, inputs_k, inputs_v, **call) -> Array:
        """The inner layer's call, its errors under this class's names."""
        with _named(type(self).__name__, self._renames):
            return self.hopfield(inputs_q, inputs_k, inputs_v, **call)


class HopfieldPooling(_LearnedPatterns):
    """Pool a set with learned queries: ``P`` learned query patterns retrieve from the ``S`` inputs.

    ``out_p = W_O V^T Sep(beta K xi_p)`` with ``xi_p`` starting at ``W_Q q_p`` for the learned queries ``q_p``
    (``queries`` of shape ``(P, in_features)``) and ``K, V`` the projected inputs; the Hopfield pooling of Ramsauer
    et al. (2021). All options of :class:`Hopfield` apply (except ``decode``).

    Args:
      num_heads: heads ``H``.
      in_features: features ``F`` of the learned queries (and of the inputs unless ``in_kv_features`` is given).
      num_queries: number of learned queries ``P``.
      query_init: initialiser of the learned queries (default: standard normal).
      trainable: the queries are an ``nnx.Param`` (True) or fixed :class:`dammem.nn.MemoryState` (False).
      rngs: ``nnx.Rngs`` (``params`` draws the queries and the projections).
      **kwargs: the options of :class:`Hopfield` (``qkv_features``, ``out_features``, ``separation``, ``beta``,
        ``learn_beta``, ``alpha``, ``learn_alpha``, ``update_steps``, ``tol``, ``use_projections``, ...).

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> pool = HopfieldPooling(num_heads=2, in_features=8, num_queries=3, out_features=4, rngs=nnx.Rngs(0))
      >>> pool(jax.random.normal(jax.random.key(1), (5, 10, 8))).shape  # 10 items per set -> 3 pooled vectors
      (5, 3, 4)
    """

    _renames = MappingProxyType({"inputs_k": "inputs", "inputs_v": "inputs", "inputs_q": "queries"})

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        num_queries: int = 1,
        *,
        query_init: Initializer = _normal_init,
        trainable: bool = True,
        rngs: nnx.Rngs,
        **kwargs,
    ):
        context = type(self).__name__
        self.num_queries = check_int(num_queries, "num_queries", context, minimum=1)
        variable = self._init_hopfield(num_heads, in_features, trainable, rngs, kwargs)
        dtype = kwargs.get("param_dtype", jnp.float32)
        self.queries = variable(query_init(rngs.params(), (self.num_queries, in_features), dtype))

    def energy(self, inputs: Float[ArrayLike, "*batch S F"], *, steps: int = 0) -> Float[Array, "*batch H P"]:
        """:meth:`Hopfield.energy` of the learned queries' states against the inputs as stored patterns."""
        inputs = _check_inputs(inputs, self.hopfield.in_kv_features, f"{type(self).__name__}.energy")
        return self.hopfield.energy(self.queries[...], inputs, steps=steps)

    def __call__(
        self,
        inputs: Float[ArrayLike, "*batch S F"],
        *,
        mask: ArrayLike | None = None,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "*batch P F_out"]:
        """Pool ``inputs`` ``(..., S, F)`` into ``(..., P, out_features)``; ``mask`` broadcastable to
        ``(..., H, P, S)`` (e.g. ``(..., 1, 1, S)`` for padding), True = attend."""
        context = type(self).__name__
        inputs = _check_inputs(inputs, self.hopfield.in_kv_features, context)
        return self._retrieve(
            self.queries[...],
            inputs,
            inputs,
            mask=mask,
            deterministic=deterministic,
            rngs=rngs,
            sow_weights=sow_weights,
        )


class HopfieldLayer(_LearnedPatterns):
    """A learned lookup: the input is the query; ``M`` learned stored patterns are the keys and the values (or
    separate learned targets are the values).

    ``out = W_O V^T Sep(beta K xi)`` with ``K = W_K Xi`` for the learned patterns ``Xi`` (``patterns`` of shape
    ``(M, in_features)``), ``V = W_V Xi`` or ``W_V Y`` for learned targets ``Y`` (``targets``, same shape) and
    ``xi`` starting at ``W_Q x`` (Ramsauer et al. (2021), the Hopfield lookup layer). All options of
    :class:`Hopfield` apply (except ``decode``).

    Args:
      num_heads: heads ``H``.
      in_features: features ``F`` of the inputs and of the stored patterns.
      num_patterns: number of learned stored patterns ``M``.
      separate_targets: learn separate values (targets) instead of reading out the stored patterns themselves.
      pattern_init: initialiser of the patterns and targets (default: standard normal).
      trainable: the patterns and targets are ``nnx.Param`` (True) or fixed :class:`dammem.nn.MemoryState` (False).
      rngs: ``nnx.Rngs``.
      **kwargs: the options of :class:`Hopfield`.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> lookup = HopfieldLayer(1, 4, num_patterns=6, use_projections=False, separation="sparsemax", beta=8.0,
      ...                        rngs=nnx.Rngs(0))
      >>> x = lookup.patterns[2:3] + 0.05  # near the third stored pattern
      >>> bool(jax.numpy.allclose(lookup(x), lookup.patterns[2:3], atol=1e-6))  # retrieves it exactly
      True
    """

    _renames = MappingProxyType({"inputs_q": "inputs", "inputs_k": "patterns", "inputs_v": "targets"})

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        num_patterns: int,
        *,
        separate_targets: bool = False,
        pattern_init: Initializer = _normal_init,
        trainable: bool = True,
        rngs: nnx.Rngs,
        **kwargs,
    ):
        context = type(self).__name__
        self.num_patterns = check_int(num_patterns, "num_patterns", context, minimum=1)
        check_bool(separate_targets, "separate_targets", context)
        variable = self._init_hopfield(num_heads, in_features, trainable, rngs, kwargs)
        dtype = kwargs.get("param_dtype", jnp.float32)
        shape = (self.num_patterns, in_features)
        self.patterns = variable(pattern_init(rngs.params(), shape, dtype))
        self.targets = variable(pattern_init(rngs.params(), shape, dtype)) if separate_targets else nnx.data(None)

    def energy(self, inputs: Float[ArrayLike, "*batch Q F"], *, steps: int = 0) -> Float[Array, "*batch H Q"]:
        """:meth:`Hopfield.energy` of the inputs' states against the learned patterns."""
        inputs = _check_inputs(inputs, self.hopfield.in_features, f"{type(self).__name__}.energy")
        return self.hopfield.energy(inputs, self.patterns[...], steps=steps)

    def __call__(
        self,
        inputs: Float[ArrayLike, "*batch Q F"],
        *,
        mask: ArrayLike | None = None,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        sow_weights: bool = False,
    ) -> Float[Array, "*batch Q F_out"]:
        """Look ``inputs`` ``(..., Q, F)`` up in the stored patterns; ``mask`` broadcastable to ``(..., H, Q, M)``."""
        context = type(self).__name__
        inputs = _check_inputs(inputs, self.hopfield.in_features, context)
        patterns = self.patterns[...]
        values = patterns if self.targets is None else self.targets[...]
        return self._retrieve(
            inputs, patterns, values, mask=mask, deterministic=deterministic, rngs=rngs, sow_weights=sow_weights
        )
