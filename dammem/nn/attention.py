"""Hopfield attention layers in Flax NNX: ``Hopfield``, ``HopfieldPooling`` and ``HopfieldLayer``.

Shape legend: ``...`` batch axes, ``Q`` query positions, ``S`` keys (stored patterns), ``H`` heads, ``F`` input
features, ``D`` width per head (``qkv_features / H``), ``F_out`` output features, ``M`` learned stored patterns,
``P`` learned queries.

Thin shells over :func:`dammem.attention.hopfield_attention` (all the math is there): with projections,

    out = W_O [ V^T Sep(beta K xi) ]  per head,   xi <- K^T Sep(beta K xi)  (update_steps - 1 times from xi = Q),
    Q = W_Q x_q,  K = W_K x_k,  V = W_V x_v,

the Hopfield layer of Ramsauer et al. (2021) (Wu et al. (2024), eq. C.1, with the update of their eq. 2.4 and the
dot-product kernel) with any separation of :mod:`dammem.separations` (sparse ones after Hu et al. (2023)).

- :class:`Hopfield` has the constructor and call of ``flax.nnx.MultiHeadAttention`` (same parameter names and
  shapes, so parameters copy over one to one; ``decode`` with ``init_cache``; ``sow_weights``), plus
  ``separation``, ``beta`` (fixed, or learnable per head as ``exp(log_beta)``), ``alpha`` of ``"entmax"`` (fixed,
  or learnable per head as ``1 + sigmoid(alpha_logit)``), ``update_steps``, ``tol`` and ``use_projections=False``
  for pure retrieval (inputs split into heads, no parameters besides beta/alpha).
- :class:`HopfieldPooling`: ``P`` learned queries retrieve from the input set: ``(..., S, F) -> (..., P, F_out)``.
- :class:`HopfieldLayer`: the input is the query; ``M`` learned stored patterns are the keys and, unless separate
  learned targets are asked for, also the values (a learned lookup table).

References:
  - Ramsauer, Schäfl, Lehner, Seidl, Widrich, Adler, Gruber, Holzleitner, Pavlović, Sandve, Greiff, Kreil, Kopp,
    Klambauer, Brandstetter, Hochreiter (2021). Hopfield Networks is All You Need. ICLR.
  - Hu, Yang, Wu, Xu, Chen, Liu (2023). On Sparse Modern Hopfield Model. NeurIPS.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.typing import Dtype, Initializer, PrecisionLike, Shape
from jax import lax
from jaxtyping import Float

from dammem._types import Array, ArrayLike
from dammem._validate import check_alpha, check_beta, check_bool, check_float, check_int, check_mask
from dammem.attention import hopfield_attention
from dammem.separations import SEPARATIONS, resolve_separation

__all__ = ["Hopfield", "HopfieldPooling", "HopfieldLayer"]

_default_kernel_init = nnx.initializers.lecun_normal()
_MIN_ALPHA_GAP = 1e-6  # a learnable alpha is 1 + max(sigmoid(a), 1e-6): the separations compute smaller gaps so too


# ----------------------------------------------------------------------------------------------------------------
# Constructor checks
# ----------------------------------------------------------------------------------------------------------------


def _static_values(value: ArrayLike) -> float | tuple[float, ...]:
    """A checked scalar or per-head value as Python floats (static configuration). Read from the caller's value, not
    from the check's result: under a trace (``nnx.eval_shape``, a jitted constructor) the latter is a tracer."""
    values = np.asarray(value, dtype=np.float64)
    return float(values) if values.ndim == 0 else tuple(float(x) for x in values)


def _check_beta(beta, learn_beta: bool, heads: int, width: int, context: str) -> float | tuple[float, ...]:
    check_bool(learn_beta, "learn_beta", context)
    if beta is None:
        return 1.0 / math.sqrt(width)
    check_beta(beta, context, heads=heads)
    return _static_values(beta)


def _check_separation(separation, alpha, learn_alpha: bool, heads: int, context: str):
    """The alpha values of a separation that takes one (Python floats), else None; the name by the registry."""
    check_bool(learn_alpha, "learn_alpha", context)
    spec = resolve_separation(separation, alpha, context)
    if spec is None or not spec.takes_alpha:
        if learn_alpha:
            takers = [name for name, entry in SEPARATIONS.items() if entry.takes_alpha]
            raise ValueError(
                f"{context}: learn_alpha is only used with a separation that takes alpha ({takers}), got separation="
                f"{separation!r}"
            )
        return None
    check_alpha(alpha, context, heads=heads)
    values = _static_values(alpha)
    if learn_alpha and np.any(np.asarray(values) >= 2.0):
        raise ValueError(
            f"{context}: alpha must lie in (1, 2) (a learnable alpha = 1 + sigmoid(a) never reaches 2), got {alpha!r}"
        )
    return values


# ----------------------------------------------------------------------------------------------------------------
# Hopfield
# ----------------------------------------------------------------------------------------------------------------


class Hopfield(nnx.Module):
    """Multi-head Hopfield attention: a drop-in for ``flax.nnx.MultiHeadAttention`` with any separation, a fixed or
    learnable per-head beta, a learnable alpha for entmax, several update steps and pure retrieval.

    ``out = W_O V^T Sep(beta K xi)`` with ``Q, K, V`` the projected inputs and the state ``xi`` updated
    ``update_steps - 1`` times from ``Q`` by ``xi <- K^T Sep(beta K xi)`` (Wu et al. (2024), eqs. 2.4 and C.1);
    computed by :func:`dammem.attention.hopfield_attention`. With ``separation="softmax"``, one step and the
    default beta it computes exactly what ``nnx.MultiHeadAttention`` computes with the same parameters.

    Args:
      num_heads: number of heads ``H``; ``qkv_features`` must be divisible by it.
      in_features: features ``F`` of ``inputs_q``.
      qkv_features: width of the projected query, key and value (default ``in_features``).
      out_features: features of the output (default ``in_features``).
      in_kv_features: features of ``inputs_k`` and ``inputs_v`` (default ``in_features``).
      separation: ``"softmax"``, ``"sparsemax"``, ``"entmax15"``, ``"entmax"`` (needs ``alpha``) or a callable
        ``sep(scores, axis=-1, where=mask)``.
      beta: inverse temperature multiplying the scores, a positive number or one per head; default
        ``1 / sqrt(qkv_features / num_heads)``.
      learn_beta: learn beta per head as ``exp(log_beta)`` (``nnx.Param`` of shape ``(H,)``, initialised at
        ``beta``).
      alpha: the alpha of ``separation="entmax"``: a number or one per head in (1, 2] ((1, 2) when learned).
      learn_alpha: learn alpha per head as ``1 + sigmoid(alpha_logit)`` (``nnx.Param`` of shape ``(H,)``,
        initialised at ``alpha``), so it stays in (1, 2]; gaps below 1e-6 are computed as 1e-6.
      update_steps: number of separations: ``update_steps - 1`` state updates, then the read-out.
      tol: optional; a query whose state moved by at most ``tol`` in an update step keeps it (per head).
      use_projections: False for pure retrieval: no query/key/value/output projections (and no ``rngs`` needed
        unless dropout is used); inputs of width ``in_features`` are split into heads (width ``in_features / H``),
        values may have any width divisible by ``H``, and the output has the values' width.
      dtype: the dtype of the computation (default: inferred from inputs and parameters).
      param_dtype: the dtype of the parameters.
      broadcast_dropout: one dropout pattern shared across the batch axes and heads.
      dropout_rate: dropout on the read-out association weights.
      deterministic: default of the call's ``deterministic`` (dropout off when True).
      precision: precision of the projections.
      kernel_init, out_kernel_init, bias_init, out_bias_init, use_bias: the projections' initialisers and bias, as
        in ``nnx.MultiHeadAttention``.
      decode: default of the call's ``decode`` (autoregressive decoding with a key/value cache; see
        :meth:`init_cache`).
      normalize_qk: layer-normalise the projected queries and keys (as ``nnx.MultiHeadAttention``).
      rngs: ``nnx.Rngs``; ``params`` initialises the projections, ``dropout`` draws the dropout.
      keep_rngs: keep a forked ``dropout`` stream for calls without ``rngs`` (when ``dropout_rate > 0``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> layer = Hopfield(num_heads=2, in_features=8, separation="sparsemax", rngs=nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (3, 5, 8))
      >>> layer(x).shape
      (3, 5, 8)
      >>> @nnx.capture(nnx.Intermediate)
      ... def weights(model, x):
      ...     return model(x, sow_weights=True)
      >>> _, found = weights(layer, x)
      >>> w = found["attention_weights"][0]  # (batch, heads, q_length, kv_length), rows on the simplex
      >>> w.shape, bool(jnp.any(w == 0.0)), bool(jnp.allclose(w.sum(-1), 1.0))
      ((3, 2, 5, 5), True, True)
    """

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        qkv_features: int | None = None,
        out_features: int | None = None,
        in_kv_features: int | None = None,
        *,
        separation: str | Callable[..., Array] = "softmax",
        beta: float | Sequence[float] | None = None,
        learn_beta: bool = False,
        alpha: float | Sequence[float] | None = None,
        learn_alpha: bool = False,
        update_steps: int = 1,
        tol: float | None = None,
        use_projections: bool = True,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        broadcast_dropout: bool = True,
        dropout_rate: float = 0.0,
        deterministic: bool | None = None,
        precision: PrecisionLike = None,
        kernel_init: Initializer = _default_kernel_init,
        out_kernel_init: Initializer | None = None,
        bias_init: Initializer = nnx.initializers.zeros_init(),
        out_bias_init: Initializer | None = None,
        use_bias: bool = True,
        decode: bool | None = None,
        normalize_qk: bool = False,
        rngs: nnx.Rngs | None = None,
        keep_rngs: bool = True,
    ):
        context = type(self).__name__
        self.num_heads = check_int(num_heads, "num_heads", context, minimum=1)
        self.in_features = check_int(in_features, "in_features", context, minimum=1)
        self.use_projections = check_bool(use_projections, "use_projections", context)
        if use_projections:
            widths = {"qkv_features": qkv_features, "out_features": out_features, "in_kv_features": in_kv_features}
            for name, value in widths.items():
                setattr(self, name, check_int(in_features if value is None else value, name, context, minimum=1))
        else:
            for name, value in (("qkv_features", qkv_features), ("out_features", out_features),
                                ("in_kv_features", in_kv_features)):  # fmt: skip
                if value is not None and value != in_features:
                    raise ValueError(
                        f"{context}: {name}={value!r} needs projections; with use_projections=False the widths are"
                        f" those of the inputs (leave it None or equal to in_features={in_features})"
                    )
            if normalize_qk:
                raise ValueError(f"{context}: normalize_qk=True needs projections (use_projections=True)")
            self.qkv_features = self.out_features = self.in_kv_features = self.in_features
        if self.qkv_features % self.num_heads != 0:
            feature = "qkv_features" if use_projections else "in_features"
            raise ValueError(
                f"{context}: {feature} ({self.qkv_features}) must be divisible by num_heads ({self.num_heads})"
            )
        self.head_dim = self.qkv_features // self.num_heads
        self.separation = separation
        alpha_values = _check_separation(separation, alpha, learn_alpha, self.num_heads, context)
        beta_values = _check_beta(beta, learn_beta, self.num_heads, self.head_dim, context)
        self.update_steps = check_int(update_steps, "update_steps", context, minimum=1)
        self.tol = check_float(tol, "tol", context, allow_zero=True, optional=True)
        self.dropout_rate = check_float(dropout_rate, "dropout_rate", context, allow_zero=True, below=1.0)
        self.broadcast_dropout = broadcast_dropout
        self.deterministic = deterministic
        self.decode = decode
        self.normalize_qk = normalize_qk
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.use_bias = use_bias
        self.learn_beta = learn_beta
        self.learn_alpha = learn_alpha

        per_head = functools.partial(jnp.broadcast_to, shape=(self.num_heads,))
        if learn_beta:
            self.log_beta = nnx.Param(per_head(jnp.log(jnp.asarray(beta_values, param_dtype))))
            self.fixed_beta = None
        else:
            self.log_beta = nnx.data(None)
            self.fixed_beta = beta_values
        if learn_alpha:
            gap = jnp.asarray(alpha_values, param_dtype) - 1.0
            self.alpha_logit = nnx.Param(per_head(jnp.log(gap) - jnp.log1p(-gap)))
            self.fixed_alpha = None
        else:
            self.alpha_logit = nnx.data(None)
            self.fixed_alpha = alpha_values

        if use_projections:
            if rngs is None:
                raise ValueError(f"{context}: rngs is required to initialise the projections (use_projections=True)")
            linear = functools.partial(
                nnx.LinearGeneral, dtype=dtype, param_dtype=param_dtype, kernel_init=kernel_init,
                bias_init=bias_init, use_bias=use_bias, precision=precision, rngs=rngs,
            )  # fmt: skip
            heads = (self.num_heads, self.head_dim)
            self.query = linear(self.in_features, out_features=heads)
            self.key = linear(self.in_kv_features, out_features=heads)
            self.value = linear(self.in_kv_features, out_features=heads)
            if normalize_qk:
                norm = functools.partial(
                    nnx.LayerNorm, self.head_dim, use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs
                )
                self.query_ln, self.key_ln = norm(), norm()
            else:
                self.query_ln = self.key_ln = nnx.data(None)
            self.out = nnx.LinearGeneral(
                in_features=heads, out_features=self.out_features, axis=(-2, -1),
                kernel_init=out_kernel_init or kernel_init, bias_init=out_bias_init or bias_init,
                use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, precision=precision, rngs=rngs,
            )  # fmt: skip
        else:
            self.query = self.key = self.value = self.out = nnx.data(None)
            self.query_ln = self.key_ln = nnx.data(None)
        if self.dropout_rate > 0 and keep_rngs:
            if rngs is None:
                raise ValueError(f"{context}: dropout_rate > 0 with keep_rngs=True needs rngs (a dropout stream)")
            self.rngs = rngs.dropout.fork()
        else:
            self.rngs = nnx.data(None)
        self.cached_key: nnx.Cache | None = nnx.data(None)
        self.cached_value: nnx.Cache | None = nnx.data(None)
        self.cache_index: nnx.Cache | None = nnx.data(None)

    # ------------------------------------------------------------------------------------------------------------

    @property
    def beta(self) -> Float[Array, " H"] | float | tuple[float, ...]:
        """The inverse temperature: ``exp(log_beta)`` per head when learned, else the fixed value(s)."""
        if self.log_beta is not None:
            return jnp.exp(self.log_beta[...])
        return self.fixed_beta

    @property
    def alpha(self) -> Float[Array, " H"] | float | tuple[float, ...] | None:
        """The alpha of entmax: ``1 + sigmoid(alpha_logit)`` per head when learned, else the fixed value(s)."""
        if self.alpha_logit is not None:
            return 1.0 + jnp.maximum(jax.nn.sigmoid(self.alpha_logit[...]), _MIN_ALPHA_GAP)
        return self.fixed_alpha

    def _split(self, x: Array, name: str) -> Array:
        """Pure retrieval: (..., L, F) -> (..., L, H, F / H)."""
        if x.shape[-1] % self.num_heads != 0:
            raise ValueError(
                f"{type(self).__name__}: {name} has {x.shape[-1]} features, not divisible by num_heads"
                f" ({self.num_heads})"
            )
        x = x if self.dtype is None else x.astype(self.dtype)
        return x.reshape(x.shape[:-1] + (self.num_heads, x.shape[-1] // self.num_heads))

    def _project(self, inputs_q, inputs_k, inputs_v):
        context = type(self).__name__
        if inputs_q.shape[-1] != self.in_features:
            raise ValueError(f"{context}: inputs_q has {inputs_q.shape[-1]} features, expected {self.in_features}")
        if not self.use_projections:
            if inputs_k.shape[-1] != self.in_features:
                raise ValueError(
                    f"{context}: inputs_k has {inputs_k.shape[-1]} features, expected in_features={self.in_features}"
                )
            return tuple(self._split(x, name) for x, name in ((inputs_q, "inputs_q"), (inputs_k, "inputs_k"),
                                                               (inputs_v, "inputs_v")))  # fmt: skip
        for name, x in (("inputs_k", inputs_k), ("inputs_v", inputs_v)):
            if x.shape[-1] != self.in_kv_features:
                raise ValueError(f"{context}: {name} has {x.shape[-1]} features, expected {self.in_kv_features}")
        query, key, value = self.query(inputs_q), self.key(inputs_k), self.value(inputs_v)
        if self.normalize_qk:
            query, key = self.query_ln(query), self.key_ln(key)
        return query, key, value

    def _decode_step(self, key, value, mask):
        """Write this step's key and value into the cache; the query attends to the filled positions only."""
        if self.cached_key is None or self.cached_value is None or self.cache_index is None:
            raise ValueError(f"{type(self).__name__}: autoregressive cache not initialised, call init_cache first")
        *batch, max_length, heads, width = self.cached_key.shape
        expected = (*batch, 1, heads, width)
        if key.shape != expected or value.shape[:-1] != expected[:-1]:
            raise ValueError(
                f"{type(self).__name__}: decode takes one position at a time: expected projected key shape"
                f" {expected}, got {key.shape}"
            )
        index = self.cache_index[...]
        zero = jnp.zeros((), index.dtype)
        start = (zero,) * len(batch) + (index, zero, zero)
        key = lax.dynamic_update_slice(self.cached_key[...], key.astype(self.cached_key.dtype), start)
        value = lax.dynamic_update_slice(self.cached_value[...], value.astype(self.cached_value.dtype), start)
        self.cached_key[...] = key
        self.cached_value[...] = value
        self.cache_index[...] = index + 1
        filled = jnp.broadcast_to(jnp.arange(max_length) <= index, (*batch, 1, 1, max_length))
        return key, value, filled if mask is None else jnp.logical_and(mask, filled)

    def __call__(
        self,
        inputs_q: Float[ArrayLike, "*qbatch Q F"],
        inputs_k: Float[ArrayLike, "*kbatch S F_kv"] | None = None,
        inputs_v: Float[ArrayLike, "*vbatch S F_v"] | None = None,
        *,
        mask: ArrayLike | None = None,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        sow_weights: bool = False,
        decode: bool | None = None,
        is_causal: bool = False,
    ) -> Float[Array, "*batch Q F_out"]:
        """Retrieve for every query position from the key/value positions (self-attention when both are None).

        Args:
          inputs_q: queries ``(..., Q, in_features)``.
          inputs_k: keys ``(..., S, in_kv_features)``; default ``inputs_q``.
          inputs_v: values ``(..., S, in_kv_features)``; default ``inputs_k``.
          mask: broadcastable to ``(..., num_heads, Q, S)``; True (nonzero) = attend. A query that attends to no
            key reads out zeros.
          deterministic: no dropout when True (overrides the constructor's).
          rngs: a dropout stream (overrides the kept one).
          sow_weights: sow the read-out association weights ``(..., H, Q, S)`` as ``nnx.Intermediate``
            ``"attention_weights"``.
          decode: one position per call against the cache of :meth:`init_cache` (overrides the constructor's).
          is_causal: add a causal mask (position ``i`` attends to positions ``<= i``).

        Returns:
          ``(..., Q, out_features)``; without projections ``(..., Q, width of inputs_v)``.
        """
        context = type(self).__name__
        if inputs_k is None:
            if inputs_v is not None:
                raise ValueError(
                    f"{context}: inputs_k cannot be None when inputs_v is given (pass inputs_k and leave inputs_v None"
                    " to use the same array for both)"
                )
            inputs_k = inputs_q
        if inputs_v is None:
            inputs_v = inputs_k
        inputs_q, inputs_k, inputs_v = (jnp.asarray(x) for x in (inputs_q, inputs_k, inputs_v))
        query, key, value = self._project(inputs_q, inputs_k, inputs_v)
        decode = self.decode if decode is None else decode
        if decode:
            if is_causal:
                raise ValueError(f"{context}: is_causal has no meaning with decode=True (the cache is causal)")
            key, value, cache_mask = self._decode_step(key, value, None)
        batch = np.broadcast_shapes(query.shape[:-3], key.shape[:-3], value.shape[:-3])
        shape = (*batch, self.num_heads, query.shape[-3], key.shape[-3])
        target = "the attention weights' shape (batch..., num_heads, q_length, kv_length) ="
        mask = check_mask(mask, shape, context, target=target, nonzero=True)  # nonzero entries attend (flax's masks)
        if decode:
            mask = cache_mask if mask is None else jnp.logical_and(mask, cache_mask)
        if is_causal:
            causal = jnp.tril(jnp.ones(shape[-2:], jnp.bool_))
            mask = causal if mask is None else jnp.logical_and(mask, causal)

        dropout_rate, dropout_key = 0.0, None
        if self.dropout_rate > 0:
            deterministic = self.deterministic if deterministic is None else deterministic
            if deterministic is None:
                raise ValueError(
                    f"{context}: dropout_rate > 0 needs deterministic (True or False) in the call or the constructor"
                )
            if not deterministic:
                stream = self.rngs if rngs is None else (rngs.dropout if isinstance(rngs, nnx.Rngs) else rngs)
                if stream is None:
                    raise ValueError(f"{context}: dropout needs rngs in the call (constructed with keep_rngs=False)")
                dropout_rate, dropout_key = self.dropout_rate, stream()

        result = hopfield_attention(
            query, key, value, beta=self.beta, separation=self.separation, alpha=self.alpha, mask=mask,
            update_steps=self.update_steps, tol=self.tol, dropout_rate=dropout_rate, dropout_key=dropout_key,
            broadcast_dropout=self.broadcast_dropout, return_weights=sow_weights,
        )  # fmt: skip
        if sow_weights:
            result, weights = result
            self.sow(nnx.Intermediate, "attention_weights", weights)
        if not self.use_projections:
            return result.reshape(result.shape[:-2] + (-1,))
        return self.out(result)

    def init_cache(self, input_shape: Shape, dtype: Dtype = jnp.float32) -> None:
        """Set up an empty key/value cache for decoding one position per call.

        Args:
          input_shape: ``(batch..., max_length, features)``, the shape of the whole sequence to decode.
          dtype: the cache's dtype.
        """
        shape = (*input_shape[:-1], self.num_heads, self.head_dim)
        self.cached_key = nnx.Cache(jnp.zeros(shape, dtype))
        self.cached_value = nnx.Cache(jnp.zeros(shape, dtype))
        self.cache_index = nnx.Cache(jnp.array(0, dtype=jnp.int32))


# ----------------------------------------------------------------------------------------------------------------
# Pooling and lookup
# ----------------------------------------------------------------------------------------------------------------


def _hopfield_kwargs(context: str, kwargs: dict) -> dict:
    for name in ("decode",):
        if name in kwargs:
            raise TypeError(f"{context}: {name} is not an option of this layer")
    return kwargs


class HopfieldPooling(nnx.Module):
    """Pool a set with learned queries: ``P`` learned query patterns retrieve from the ``S`` inputs.

    ``out_p = W_O V^T Sep(beta K xi_p)`` with ``xi_p`` starting at ``W_Q q_p`` for the learned queries ``q_p``
    (``nnx.Param`` ``queries`` of shape ``(P, in_features)``) and ``K, V`` the projected inputs; the Hopfield pooling
    of Ramsauer et al. (2021). All options of :class:`Hopfield` apply (except ``decode``).

    Args:
      num_heads: heads ``H``.
      in_features: features ``F`` of the inputs.
      num_queries: number of learned queries ``P``.
      query_init: initialiser of the learned queries (default: standard normal).
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

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        num_queries: int = 1,
        *,
        query_init: Initializer = nnx.initializers.normal(1.0),
        rngs: nnx.Rngs,
        **kwargs,
    ):
        context = type(self).__name__
        self.num_queries = check_int(num_queries, "num_queries", context, minimum=1)
        self.hopfield = Hopfield(num_heads, in_features, rngs=rngs, **_hopfield_kwargs(context, kwargs))
        dtype = kwargs.get("param_dtype", jnp.float32)
        self.queries = nnx.Param(query_init(rngs.params(), (self.num_queries, in_features), dtype))

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
        return self.hopfield(
            self.queries[...], inputs, mask=mask, deterministic=deterministic, rngs=rngs, sow_weights=sow_weights
        )


class HopfieldLayer(nnx.Module):
    """A learned lookup: the input is the query; ``M`` learned stored patterns are the keys and the values (or
    separate learned targets are the values).

    ``out = W_O V^T Sep(beta K xi)`` with ``K = W_K Xi`` for the learned patterns ``Xi`` (``nnx.Param``
    ``patterns`` of shape ``(M, in_features)``), ``V = W_V Xi`` or ``W_V Y`` for learned targets ``Y`` (``nnx.Param``
    ``targets``, same shape) and ``xi`` starting at ``W_Q x`` (Ramsauer et al. (2021), the Hopfield lookup layer).
    All options of :class:`Hopfield` apply (except ``decode``).

    Args:
      num_heads: heads ``H``.
      in_features: features ``F`` of the inputs and of the stored patterns.
      num_patterns: number of learned stored patterns ``M``.
      separate_targets: learn separate values (targets) instead of reading out the stored patterns themselves.
      pattern_init: initialiser of the patterns and targets (default: standard normal).
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

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        num_patterns: int,
        *,
        separate_targets: bool = False,
        pattern_init: Initializer = nnx.initializers.normal(1.0),
        rngs: nnx.Rngs,
        **kwargs,
    ):
        context = type(self).__name__
        self.num_patterns = check_int(num_patterns, "num_patterns", context, minimum=1)
        check_bool(separate_targets, "separate_targets", context)
        self.hopfield = Hopfield(num_heads, in_features, rngs=rngs, **_hopfield_kwargs(context, kwargs))
        dtype = kwargs.get("param_dtype", jnp.float32)
        shape = (self.num_patterns, in_features)
        self.patterns = nnx.Param(pattern_init(rngs.params(), shape, dtype))
        self.targets = nnx.Param(pattern_init(rngs.params(), shape, dtype)) if separate_targets else nnx.data(None)

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
        patterns = self.patterns[...]
        values = patterns if self.targets is None else self.targets[...]
        return self.hopfield(
            inputs, patterns, values, mask=mask, deterministic=deterministic, rngs=rngs, sow_weights=sow_weights
        )
