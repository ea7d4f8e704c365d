"""Hopfield attention in Flax NNX: ``Hopfield``, a drop-in for ``flax.nnx.MultiHeadAttention``.

Shape legend: ``...`` batch axes, ``Q`` query positions, ``S`` keys (stored patterns), ``H`` heads, ``F`` input
features, ``D`` width per head (``qkv_features / H``), ``F_out`` output features.

A thin shell over :func:`dammem.attention.hopfield_attention` (all the math is there): with projections,

    out = W_O [ V^T Sep(beta K xi) ]  per head,   xi <- K^T Sep(beta K xi)  (update_steps - 1 times from xi = Q),
    Q = W_Q x_q,  K = W_K x_k,  V = W_V x_v,

the Hopfield layer of Ramsauer et al. (2021) (Wu et al. (2024), eq. C.1, with the update of their eq. 2.4 and the
dot-product kernel) with any separation of :mod:`dammem.separations` (sparse ones after Hu et al. (2023)).

:class:`Hopfield` has the constructor and call of ``flax.nnx.MultiHeadAttention`` (same parameter names and shapes,
so parameters copy over one to one; ``decode`` with ``init_cache``; ``sow_weights``), plus ``separation``, ``beta``
(fixed, or learnable per head as ``exp(log_beta)``), ``alpha`` of ``"entmax"`` (fixed, or learnable per head as
``1 + sigmoid(alpha_logit)``), ``update_steps`` (one for all heads or one per head), ``tol``,
``use_projections=False`` for pure retrieval (inputs split into heads, no parameters besides beta/alpha) and the
options of PyTorch hopfield-layers. Its constructor checks live in :mod:`dammem.nn._hopfield_checks`; the pooling
and lookup layers built on it in :mod:`dammem.nn.pooling`.

References:
  - Ramsauer, Schäfl, Lehner, Seidl, Widrich, Adler, Gruber, Holzleitner, Pavlović, Sandve, Greiff, Kreil, Kopp,
    Klambauer, Brandstetter, Hochreiter (2021). Hopfield Networks is All You Need. ICLR.
  - Hu, Yang, Wu, Xu, Chen, Liu (2023). On Sparse Modern Hopfield Model. NeurIPS.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx.nn import dtypes
from flax.typing import DotGeneralT, Dtype, Initializer, PrecisionLike, PromoteDtypeFn, Shape
from jax import lax
from jaxtyping import Float

from dammem._types import Array, ArrayLike
from dammem._validate import check_bool, check_float, check_int, check_mask
from dammem.attention import check_update_steps, hopfield_attention
from dammem.energies import sparse_hopfield_energy
from dammem.nn._hopfield_checks import (
    check_activation,
    check_attention_fn,
    check_layer_beta,
    check_layer_separation,
    check_static,
    check_tol,
)
from dammem.separations import SEPARATIONS

__all__ = ["Hopfield"]

_default_kernel_init = nnx.initializers.lecun_normal()
_zeros_init = nnx.initializers.zeros_init()
_MIN_ALPHA_GAP = 1e-6  # a learnable alpha is 1 + max(sigmoid(a), 1e-6): the separations compute smaller gaps so too


class Hopfield(nnx.Module):
    """Multi-head Hopfield attention: a drop-in for ``flax.nnx.MultiHeadAttention`` with any separation, a fixed or
    learnable per-head beta, a learnable alpha for entmax, several update steps and pure retrieval.

    ``out = W_O V^T Sep(beta K xi)`` with ``Q, K, V`` the projected inputs and the state ``xi`` updated
    ``update_steps - 1`` times from ``Q`` by ``xi <- K^T Sep(beta K xi)`` (Wu et al. (2024), eqs. 2.4 and C.1);
    computed by :func:`dammem.attention.hopfield_attention`. With ``separation="softmax"``, one step and the
    default beta it computes exactly what ``nnx.MultiHeadAttention`` computes with the same parameters.

    The drop-in contract: every argument of ``nnx.MultiHeadAttention`` (constructor and call, in its order: the 5th
    positional is ``num_kv_heads``) is accepted and means the same; parameters have the same names and shapes.
    The dammem options are keyword-only.

    Args:
      num_heads: number of query heads ``H``; ``qkv_features`` must be divisible by it.
      in_features: features ``F`` of ``inputs_q``.
      qkv_features: width of the projected query, key and value (default ``in_features``).
      out_features: features of the output (default ``in_features``).
      num_kv_heads: key/value heads ``H_kv`` dividing ``num_heads`` (default ``num_heads``); fewer is grouped-query
        attention: query head ``h`` reads key/value head ``h // (H / H_kv)``, and in an update step each query head
        moves its own state against the keys its group shares.
      in_kv_features: features of ``inputs_k`` and ``inputs_v`` (default ``in_features``).
      dtype, param_dtype, broadcast_dropout, dropout_rate, deterministic, precision, kernel_init, out_kernel_init,
        bias_init, out_bias_init, use_bias, decode, normalize_qk, qkv_promote_dtype, out_promote_dtype,
        ln_promote_dtype, qkv_dot_general, out_dot_general, qkv_dot_general_cls, out_dot_general_cls, keep_rngs,
        kernel_metadata, out_kernel_metadata, bias_metadata, out_bias_metadata, query_ln_scale_metadata,
        key_ln_scale_metadata: as in ``nnx.MultiHeadAttention`` (passed to the same ``nnx.LinearGeneral`` /
        ``nnx.LayerNorm`` submodules; ``precision`` also to every product of the retrieval).
      attention_fn: None (default): the read-out is :func:`dammem.attention.hopfield_attention`. Otherwise a
        function that computes the read-out from the state, called on ``(xi, key, value)`` after the
        ``update_steps - 1`` state updates (which ``hopfield_attention`` computes with softmax): either flax's
        convention (``nnx.dot_product_attention``'s keywords ``mask, dropout_rng, dropout_rate, broadcast_dropout,
        deterministic, dtype, precision, module, is_causal``) or ``jax.nn.dot_product_attention``'s (``mask,
        scale, is_causal``; ``scale`` gets beta, a scalar). The function applies its own separation: only
        ``separation="softmax"`` is accepted with it, and with flax's convention (its own ``1/sqrt(D)`` scale)
        the default beta only.
      separation: ``"softmax"``, ``"sparsemax"``, ``"entmax15"``, ``"entmax"`` (needs ``alpha``) or a callable
        ``sep(scores, axis=-1, where=mask)`` (its weights on masked keys are dropped and the rest renormalised).
      beta: inverse temperature multiplying the scores, a positive number or one per head; default
        ``1 / sqrt(qkv_features / num_heads)``.
      learn_beta: learn beta per head as ``exp(log_beta)`` (``nnx.Param`` of shape ``(H,)``, initialised at
        ``beta``).
      alpha: the alpha of ``separation="entmax"``: a number or one per head in (1, 2] ((1, 2) when learned).
      learn_alpha: learn alpha per head as ``1 + sigmoid(alpha_logit)`` (``nnx.Param`` of shape ``(H,)``,
        initialised at ``alpha``), so it stays in (1, 2]; gaps below 1e-6 are computed as 1e-6.
      update_steps: number of separations: ``update_steps - 1`` state updates, then the read-out; a sequence of one
        number per head: each head runs its own number of updates and keeps its state while the others go on
        (hopfield-layers' per-head ``update_steps_max``; needs ``attention_fn=None``); None: updates until every
        query moved by at most ``tol`` (at most ``max_steps``).
      tol: optional, one number or one per head; a query whose state moved by at most ``tol`` in an update step
        keeps it (per head).
      max_steps: the most state updates with ``update_steps=None``.
      loop: ``"scan"`` (differentiable: converged queries keep their state for the remaining ``max_steps``) or,
        with ``update_steps=None``, ``"while"`` (stops when all converged; forward only).
      use_projections: False for pure retrieval: no query/key/value/output projections (and no ``rngs`` needed
        unless dropout is used); inputs of width ``in_features`` are split into heads (width ``in_features / H``),
        keys into ``num_kv_heads`` heads of that width, values may have any width divisible by ``num_kv_heads``,
        and the output has ``H / H_kv`` times the values' width.
      rngs: ``nnx.Rngs``; ``params`` initialises the projections, ``dropout`` draws the dropout.
      normalize_state_pattern, normalize_stored_pattern, normalize_pattern_projection: an ``nnx.LayerNorm`` on
        ``inputs_q``, ``inputs_k``, ``inputs_v`` before their projections (hopfield-layers' normalisations of the
        state, stored and projected patterns; there on by default with epsilon 1e-5, here off, epsilon 1e-6);
        ``*_affine``: with a learned scale and bias.
      concat_bias_pattern: append a learned key and value (``bias_key``, ``bias_value`` of shape ``(H_kv, D)``)
        to the projected keys and values, visible to every query (hopfield-layers' ``concat_bias_pattern``).
      add_zero_association: append a zero key and a zero value, visible to every query (a query can read out
        nearly nothing); both appended patterns come after the ``S`` keys in the sown weights.
      disable_out_projection: no output projection: the output is the heads' read-outs concatenated,
        ``(..., Q, H * D)``.
      state_pattern_as_static, stored_pattern_as_static, pattern_projection_as_static: take ``inputs_q`` /
        ``inputs_k`` / ``inputs_v`` as they are (split into heads) instead of projecting them (hopfield-layers'
        ``*_as_static``); the input's width must be its heads times ``qkv_features / num_heads``.
      pattern_projection_as_connected: the values pass the key projection first, ``V = W_V (W_K x_v)`` with biases
        (hopfield-layers' ``pattern_projection_as_connected``): ``value`` maps the ``(H_kv, D)`` projected keys to
        ``(H_kv, D)`` (kernel ``(H_kv, D, H_kv, D)``), or, with ``pattern_projection_as_static=True``, is absent and
        ``V = W_K x_v``. Needs the key projection (``use_projections=True``, ``stored_pattern_as_static=False``).
      association_activation: applied to the output, after the output projection (hopfield-layers'
        ``association_activation``): None, a function, or one of ``"relu"``, ``"sigmoid"``, ``"tanh"``,
        ``"selu"``, ``"celu"``.

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
        num_kv_heads: int | None = None,
        in_kv_features: int | None = None,
        *,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        broadcast_dropout: bool = True,
        dropout_rate: float = 0.0,
        deterministic: bool | None = None,
        precision: PrecisionLike = None,
        kernel_init: Initializer = _default_kernel_init,
        out_kernel_init: Initializer | None = None,
        bias_init: Initializer = _zeros_init,
        out_bias_init: Initializer | None = None,
        use_bias: bool = True,
        attention_fn: Callable[..., Array] | None = None,
        decode: bool | None = None,
        normalize_qk: bool = False,
        qkv_promote_dtype: PromoteDtypeFn = dtypes.promote_dtype,
        out_promote_dtype: PromoteDtypeFn = dtypes.promote_dtype,
        ln_promote_dtype: PromoteDtypeFn = dtypes.promote_dtype,
        qkv_dot_general: DotGeneralT | None = None,
        out_dot_general: DotGeneralT | None = None,
        qkv_dot_general_cls: Any = None,
        out_dot_general_cls: Any = None,
        rngs: nnx.Rngs | None = None,
        keep_rngs: bool = True,
        kernel_metadata: Mapping[str, Any] = MappingProxyType({}),
        out_kernel_metadata: Mapping[str, Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, Any] = MappingProxyType({}),
        out_bias_metadata: Mapping[str, Any] = MappingProxyType({}),
        query_ln_scale_metadata: Mapping[str, Any] = MappingProxyType({}),
        key_ln_scale_metadata: Mapping[str, Any] = MappingProxyType({}),
        separation: str | Callable[..., Array] = "softmax",
        beta: float | Sequence[float] | None = None,
        learn_beta: bool = False,
        alpha: float | Sequence[float] | None = None,
        learn_alpha: bool = False,
        update_steps: int | Sequence[int] | None = 1,
        tol: float | Sequence[float] | None = None,
        max_steps: int = 100,
        loop: str = "scan",
        use_projections: bool = True,
        normalize_state_pattern: bool = False,
        normalize_state_pattern_affine: bool = True,
        normalize_stored_pattern: bool = False,
        normalize_stored_pattern_affine: bool = True,
        normalize_pattern_projection: bool = False,
        normalize_pattern_projection_affine: bool = True,
        concat_bias_pattern: bool = False,
        add_zero_association: bool = False,
        disable_out_projection: bool = False,
        state_pattern_as_static: bool = False,
        stored_pattern_as_static: bool = False,
        pattern_projection_as_static: bool = False,
        pattern_projection_as_connected: bool = False,
        association_activation: str | Callable[[Array], Array] | None = None,
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
            for name, value in (("qkv_features", qkv_features), ("out_features", out_features)):
                if value is not None and value != in_features:
                    raise ValueError(
                        f"{context}: {name}={value!r} needs projections; with use_projections=False the widths are"
                        f" those of the inputs (leave it None or equal to in_features={in_features})"
                    )
            if normalize_qk:
                raise ValueError(f"{context}: normalize_qk=True needs projections (use_projections=True)")
            self.qkv_features = self.out_features = self.in_features
        if self.qkv_features % self.num_heads != 0:
            feature = "qkv_features" if use_projections else "in_features"
            raise ValueError(
                f"{context}: {feature} ({self.qkv_features}) must be divisible by num_heads ({self.num_heads})"
            )
        self.head_dim = self.qkv_features // self.num_heads
        kv_heads = self.num_heads if num_kv_heads is None else num_kv_heads
        self.num_kv_heads = check_int(kv_heads, "num_kv_heads", context, minimum=1)
        if self.num_heads % self.num_kv_heads != 0:
            raise ValueError(
                f"{context}: num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})"
            )
        if not use_projections:
            expected = self.num_kv_heads * self.head_dim
            if in_kv_features is not None and in_kv_features != expected:
                raise ValueError(
                    f"{context}: in_kv_features={in_kv_features!r}: with use_projections=False the keys have"
                    f" num_kv_heads * in_features / num_heads = {expected} features (leave it None)"
                )
            self.in_kv_features = expected
        self.separation = separation
        alpha_values = check_layer_separation(separation, alpha, learn_alpha, self.num_heads, context)
        beta_values = check_layer_beta(beta, learn_beta, self.num_heads, self.head_dim, context)
        self.attention_fn = attention_fn
        self.attention_convention = check_attention_fn(
            attention_fn, separation, beta, learn_beta, dropout_rate, context
        )
        self.update_steps = None if update_steps is None else check_update_steps(update_steps, self.num_heads, context)
        if isinstance(self.update_steps, tuple) and attention_fn is not None:
            raise ValueError(
                f"{context}: update_steps={update_steps!r} (one per head) needs attention_fn=None (the read-out of"
                " hopfield_attention)"
            )
        self.tol = check_tol(tol, self.num_heads, context)
        self.max_steps = check_int(max_steps, "max_steps", context, minimum=1)
        if update_steps is None and tol is None:
            raise ValueError(f"{context}: update_steps=None (until convergence) needs tol (the largest change allowed)")
        if loop not in ("scan", "while") or (loop == "while" and update_steps is not None):
            raise ValueError(
                f"{context}: loop must be 'scan', or 'while' with update_steps=None, got loop={loop!r} with"
                f" update_steps={update_steps!r}"
            )
        self.loop = loop
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
        self.qkv_promote_dtype = qkv_promote_dtype
        self.out_promote_dtype = out_promote_dtype
        self.ln_promote_dtype = ln_promote_dtype
        self.qkv_dot_general = qkv_dot_general
        self.out_dot_general = out_dot_general
        self.qkv_dot_general_cls = qkv_dot_general_cls
        self.out_dot_general_cls = out_dot_general_cls

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
                bias_init=bias_init, use_bias=use_bias, precision=precision, promote_dtype=qkv_promote_dtype,
                dot_general=qkv_dot_general, dot_general_cls=qkv_dot_general_cls, kernel_metadata=kernel_metadata,
                bias_metadata=bias_metadata, rngs=rngs,
            )  # fmt: skip
            heads, kv_heads = (self.num_heads, self.head_dim), (self.num_kv_heads, self.head_dim)
            static = check_static(
                context, self.in_features, self.in_kv_features, heads, kv_heads, pattern_projection_as_connected,
                state_pattern_as_static=state_pattern_as_static, stored_pattern_as_static=stored_pattern_as_static,
                pattern_projection_as_static=pattern_projection_as_static,
            )  # fmt: skip

            def project(features, out, as_static, **axis):
                return nnx.data(None) if as_static else linear(features, out, **axis)

            self.query = project(self.in_features, heads, static[0])
            self.key = project(self.in_kv_features, kv_heads, static[1])
            if pattern_projection_as_connected:  # V = W_V (W_K x_v): the value projection reads every key head
                self.value = project(kv_heads, kv_heads, static[2], axis=(-2, -1))
            else:
                self.value = project(self.in_kv_features, kv_heads, static[2])
            if normalize_qk:
                norm = functools.partial(
                    nnx.LayerNorm, self.head_dim, use_bias=False, dtype=dtype, param_dtype=param_dtype,
                    promote_dtype=ln_promote_dtype, rngs=rngs,
                )  # fmt: skip
                self.query_ln = norm(scale_metadata=query_ln_scale_metadata)
                self.key_ln = norm(scale_metadata=key_ln_scale_metadata)
            else:
                self.query_ln = self.key_ln = nnx.data(None)
            self.out = nnx.LinearGeneral(
                in_features=heads, out_features=self.out_features, axis=(-2, -1),
                kernel_init=out_kernel_init or kernel_init, bias_init=out_bias_init or bias_init,
                use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, precision=precision,
                promote_dtype=out_promote_dtype, dot_general=out_dot_general, dot_general_cls=out_dot_general_cls,
                kernel_metadata=out_kernel_metadata or kernel_metadata,
                bias_metadata=out_bias_metadata or bias_metadata, rngs=rngs,
            )  # fmt: skip
        else:
            if state_pattern_as_static or stored_pattern_as_static or pattern_projection_as_static:
                raise ValueError(
                    f"{context}: the *_as_static options need use_projections=True (without projections"
                    " every input is static)"
                )
            if check_bool(pattern_projection_as_connected, "pattern_projection_as_connected", context):
                raise ValueError(
                    f"{context}: pattern_projection_as_connected=True sends the values through the key projection,"
                    " so it needs use_projections=True"
                )
            self.query = self.key = self.value = self.out = nnx.data(None)
            self.query_ln = self.key_ln = nnx.data(None)
        self.pattern_projection_as_connected = pattern_projection_as_connected
        self.association_activation = check_activation(association_activation, context)
        self._init_hflayers_options(
            rngs, normalize_state_pattern, normalize_state_pattern_affine, normalize_stored_pattern,
            normalize_stored_pattern_affine, normalize_pattern_projection, normalize_pattern_projection_affine,
            concat_bias_pattern, add_zero_association, disable_out_projection, out_features,
        )  # fmt: skip
        if self.dropout_rate > 0 and keep_rngs:
            if rngs is None:
                raise ValueError(f"{context}: dropout_rate > 0 with keep_rngs=True needs rngs (a dropout stream)")
            self.rngs = rngs.dropout.fork()
        else:
            self.rngs = nnx.data(None)
        self.cached_key: nnx.Cache | None = nnx.data(None)
        self.cached_value: nnx.Cache | None = nnx.data(None)
        self.cache_index: nnx.Cache | None = nnx.data(None)

    def _init_hflayers_options(
        self, rngs, state_norm, state_affine, stored_norm, stored_affine, projection_norm, projection_affine,
        concat_bias_pattern, add_zero_association, disable_out_projection, out_features,
    ) -> None:  # fmt: skip
        """The options of PyTorch hopfield-layers (Ramsauer et al. (2021)): input LayerNorms, bias and zero
        patterns appended to the keys and values, no output projection."""
        context = type(self).__name__
        flags = dict(
            normalize_state_pattern=state_norm, normalize_state_pattern_affine=state_affine,
            normalize_stored_pattern=stored_norm, normalize_stored_pattern_affine=stored_affine,
            normalize_pattern_projection=projection_norm, normalize_pattern_projection_affine=projection_affine,
            concat_bias_pattern=concat_bias_pattern, add_zero_association=add_zero_association,
            disable_out_projection=disable_out_projection,
        )  # fmt: skip
        for name, value in flags.items():
            check_bool(value, name, context)
        if (state_norm or stored_norm or projection_norm or concat_bias_pattern) and rngs is None:
            raise ValueError(f"{context}: the input LayerNorms and concat_bias_pattern need rngs")
        if (concat_bias_pattern or add_zero_association) and (self.attention_fn is not None or self.decode):
            raise ValueError(
                f"{context}: concat_bias_pattern and add_zero_association append keys that attention_fn and decode do"
                " not know of; they need attention_fn=None and decode off"
            )
        if (concat_bias_pattern or projection_norm) and not self.use_projections:
            raise ValueError(
                f"{context}: concat_bias_pattern and normalize_pattern_projection need projections (use_projections"
                "=True: without them the values may have any width)"
            )
        if disable_out_projection and out_features is not None:
            raise ValueError(
                f"{context}: out_features={out_features!r} needs the output projection (disable_out_projection=False)"
            )

        def norm(on, affine, features):
            if not on:
                return nnx.data(None)
            return nnx.LayerNorm(
                features, use_bias=affine, use_scale=affine, dtype=self.dtype, param_dtype=self.param_dtype, rngs=rngs
            )

        self.state_pattern_norm = norm(state_norm, state_affine, self.in_features)
        self.stored_pattern_norm = norm(stored_norm, stored_affine, self.in_kv_features)
        self.pattern_projection_norm = norm(projection_norm, projection_affine, self.in_kv_features)
        self.add_zero_association = add_zero_association
        if concat_bias_pattern:
            init = nnx.initializers.xavier_normal()
            shape = (self.num_kv_heads, self.head_dim)
            self.bias_key = nnx.Param(init(rngs.params(), shape, self.param_dtype))
            self.bias_value = nnx.Param(init(rngs.params(), shape, self.param_dtype))
        else:
            self.bias_key = self.bias_value = nnx.data(None)
        self.disable_out_projection = disable_out_projection
        if disable_out_projection:
            self.out = nnx.data(None)
            self.out_features = None

    def _append_patterns(self, key, value, mask, shape):
        """Keys and values with the bias pattern and the zero association appended (always visible)."""
        keys, values = [], []
        if self.bias_key is not None:
            keys.append(self.bias_key[...].astype(key.dtype))
            values.append(self.bias_value[...].astype(value.dtype))
        if self.add_zero_association:
            keys.append(jnp.zeros(key.shape[-2:], key.dtype))
            values.append(jnp.zeros(value.shape[-2:], value.dtype))
        if not keys:
            return key, value, mask
        extra_k, extra_v = jnp.stack(keys), jnp.stack(values)  # (n, H_kv, D), (n, H_kv, D_v)
        key = jnp.concatenate([key, jnp.broadcast_to(extra_k, key.shape[:-3] + extra_k.shape)], axis=-3)
        value = jnp.concatenate([value, jnp.broadcast_to(extra_v, value.shape[:-3] + extra_v.shape)], axis=-3)
        if mask is not None:
            visible = jnp.ones(shape[:-1] + (len(keys),), jnp.bool_)
            mask = jnp.concatenate([jnp.broadcast_to(mask, shape), visible], axis=-1)
        return key, value, mask

    # ------------------------------------------------------------------------------------------------------------

    @property
    def beta(self) -> Float[Array, ""] | Float[Array, " H"]:
        """The inverse temperature as an array: ``exp(log_beta)`` per head ``(H,)`` when learned, else the fixed
        value (``()`` or ``(H,)``)."""
        if self.log_beta is not None:
            return jnp.exp(self.log_beta[...])
        return jnp.asarray(self.fixed_beta)

    @property
    def alpha(self) -> Float[Array, ""] | Float[Array, " H"] | None:
        """The separation's alpha as an array: ``1 + sigmoid(alpha_logit)`` per head when learned, the fixed value of
        ``"entmax"``, the alpha a named separation is (softmax 1, 1.5-entmax 1.5, sparsemax 2); None for a callable."""
        if self.alpha_logit is not None:
            return 1.0 + jnp.maximum(jax.nn.sigmoid(self.alpha_logit[...]), _MIN_ALPHA_GAP)
        if self.fixed_alpha is not None:
            return jnp.asarray(self.fixed_alpha)
        if callable(self.separation):
            return None
        return jnp.asarray(SEPARATIONS[self.separation].alpha)

    def _alpha_argument(self) -> Array | None:
        """The alpha that :func:`hopfield_attention` takes (only for a separation that takes one)."""
        return None if self.alpha_logit is None and self.fixed_alpha is None else self.alpha

    def _split(self, x: Array, name: str, heads: int) -> Array:
        """Pure retrieval: (..., L, F) -> (..., L, heads, F / heads)."""
        if x.shape[-1] % heads != 0:
            raise ValueError(
                f"{type(self).__name__}: {name} has {x.shape[-1]} features, not divisible by {heads} heads"
            )
        x = x if self.dtype is None else x.astype(self.dtype)
        return x.reshape(x.shape[:-1] + (heads, x.shape[-1] // heads))

    def _project(self, inputs_q, inputs_k, inputs_v, qkv_sharding):
        context = type(self).__name__
        if inputs_q.shape[-1] != self.in_features:
            raise ValueError(
                f"{context}: inputs_q has {inputs_q.shape[-1]} features, expected in_features={self.in_features}"
            )
        for name, x in (("inputs_k", inputs_k),) + ((("inputs_v", inputs_v),) if self.use_projections else ()):
            if x.shape[-1] != self.in_kv_features:
                raise ValueError(
                    f"{context}: {name} has {x.shape[-1]} features, expected in_kv_features={self.in_kv_features}"
                )
        norms = (self.state_pattern_norm, self.stored_pattern_norm, self.pattern_projection_norm)
        inputs_q, inputs_k, inputs_v = (
            x if norm is None else norm(x) for x, norm in zip((inputs_q, inputs_k, inputs_v), norms, strict=True)
        )
        if not self.use_projections:
            if qkv_sharding is not None:
                raise ValueError(f"{context}: qkv_sharding needs projections (use_projections=True)")
            return (
                self._split(inputs_q, "inputs_q", self.num_heads),
                self._split(inputs_k, "inputs_k", self.num_kv_heads),
                self._split(inputs_v, "inputs_v", self.num_kv_heads),
            )

        def project(x, name, heads, linear):
            return self._split(x, name, heads) if linear is None else linear(x, out_sharding=qkv_sharding)

        query = project(inputs_q, "inputs_q", self.num_heads, self.query)
        key = project(inputs_k, "inputs_k", self.num_kv_heads, self.key)
        if self.pattern_projection_as_connected:  # the values pass the key projection first (hopfield-layers)
            value = self.key(inputs_v, out_sharding=qkv_sharding)
            if self.value is not None:
                value = self.value(value, out_sharding=qkv_sharding)
        else:
            value = project(inputs_v, "inputs_v", self.num_kv_heads, self.value)
        if self.normalize_qk:
            query, key = self.query_ln(query), self.key_ln(key)
        return query, key, value

    def _decode_step(self, key, value):
        """Write this step's key and value into the cache; return the cache and the mask of its filled positions."""
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
        return key, value, jnp.broadcast_to(jnp.arange(max_length) <= index, (*batch, 1, 1, max_length))

    def _check_inputs(self, inputs_q, inputs_k, inputs_v) -> None:
        """Rank and batch axes of the three inputs, named in the messages."""
        context = type(self).__name__
        for name, x in (("inputs_q", inputs_q), ("inputs_k", inputs_k), ("inputs_v", inputs_v)):
            if x.ndim < 2:
                raise ValueError(
                    f"{context}: {name} must have shape (batch..., length, features), got {tuple(x.shape)}"
                )
        if inputs_k.shape[-2] != inputs_v.shape[-2]:
            raise ValueError(
                f"{context}: inputs_k of shape {tuple(inputs_k.shape)} and inputs_v of shape {tuple(inputs_v.shape)}"
                " must have the same length (axis -2)"
            )
        try:
            np.broadcast_shapes(inputs_q.shape[:-2], inputs_k.shape[:-2], inputs_v.shape[:-2])
        except ValueError:
            raise ValueError(
                f"{context}: the batch axes of inputs_q {tuple(inputs_q.shape)}, inputs_k {tuple(inputs_k.shape)} and"
                f" inputs_v {tuple(inputs_v.shape)} do not broadcast"
            ) from None

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
        out_sharding: Any = None,
        qkv_sharding: Any = None,
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
          decode: one position per call against the cache of :meth:`init_cache` (overrides the constructor's); the
            query sees the filled cache positions that ``mask`` (broadcastable to ``(..., H, 1, max_length)``) also
            lets it see.
          is_causal: position ``i`` attends to positions ``<= i`` only, on top of ``mask`` (both hold).
          out_sharding: the output projection's ``out_sharding`` (as ``nnx.MultiHeadAttention``).
          qkv_sharding: the query/key/value projections' ``out_sharding``.

        Returns:
          ``(..., Q, out_features)``; without projections ``(..., Q, H / H_kv * width of inputs_v)``.
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
        self._check_inputs(inputs_q, inputs_k, inputs_v)
        query, key, value = self._project(inputs_q, inputs_k, inputs_v, qkv_sharding)
        decode = self.decode if decode is None else decode
        cache_mask = None
        if decode:
            if is_causal:
                raise ValueError(f"{context}: is_causal has no meaning with decode=True (the cache is causal)")
            key, value, cache_mask = self._decode_step(key, value)
        batch = np.broadcast_shapes(query.shape[:-3], key.shape[:-3], value.shape[:-3])
        shape = (*batch, self.num_heads, query.shape[-3], key.shape[-3])
        target = "the attention weights' shape (batch..., num_heads, q_length, kv_length) ="
        mask = check_mask(mask, shape, context, target=target, nonzero=True)  # nonzero entries attend (flax's masks)
        caller_mask = mask
        for extra in (cache_mask, jnp.tril(jnp.ones(shape[-2:], jnp.bool_)) if is_causal else None):
            if extra is not None:
                mask = extra if mask is None else jnp.logical_and(mask, extra)
        key, value, mask = self._append_patterns(key, value, mask, shape)

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

        retrieve = functools.partial(
            hopfield_attention, beta=self.beta, separation=self.separation, alpha=self._alpha_argument(),
            mask=mask, tol=self.tol, max_steps=self.max_steps, loop=self.loop, precision=self.precision,
        )  # fmt: skip
        if self.attention_fn is None:
            result = retrieve(
                query, key, value, update_steps=self.update_steps, dropout_rate=dropout_rate,
                dropout_key=dropout_key, broadcast_dropout=self.broadcast_dropout, return_weights=sow_weights,
            )  # fmt: skip
            if sow_weights:
                result, weights = result
                self.sow(nnx.Intermediate, "attention_weights", weights)
        else:
            state = query
            if self.update_steps != 1:  # the state after the updates: a read-out of the keys themselves
                steps = None if self.update_steps is None else self.update_steps - 1
                state = retrieve(query, key, key, update_steps=steps).astype(query.dtype)
            if decode:  # the caller's attention_fn gets the cache mask (flax's decode), the causal flag as passed
                caller_mask = cache_mask if caller_mask is None else jnp.logical_and(caller_mask, cache_mask)
            result = self._attention_fn(
                state, key, value, caller_mask, is_causal, sow_weights, deterministic, dropout_rate, dropout_key
            )
        if self.out is None:
            if out_sharding is not None:
                raise ValueError(f"{context}: out_sharding needs the output projection")
            result = result.reshape(result.shape[:-2] + (-1,))
        else:
            result = self.out(result, out_sharding=out_sharding)
        return result if self.association_activation is None else self.association_activation(result)

    def _attention_fn(self, state, key, value, mask, is_causal, sow_weights, deterministic, rate, dropout_key):
        """The caller's ``attention_fn`` as the read-out, in its convention."""
        if self.attention_convention == "flax":
            return self.attention_fn(
                state, key, value, mask=mask, dropout_rng=dropout_key, dropout_rate=self.dropout_rate,
                broadcast_dropout=self.broadcast_dropout, deterministic=rate == 0.0, dtype=self.dtype,
                precision=self.precision, module=self if sow_weights else None, is_causal=is_causal,
            )  # fmt: skip
        if sow_weights:
            raise ValueError(
                f"{type(self).__name__}: sow_weights=True needs an attention_fn of flax's convention (a `module`"
                " argument) or attention_fn=None"
            )
        return self.attention_fn(state, key, value, mask=mask, scale=self.fixed_beta, is_causal=is_causal)

    def energy(
        self,
        inputs_q: Float[ArrayLike, "*qbatch Q F"],
        inputs_k: Float[ArrayLike, "*kbatch S F_kv"] | None = None,
        *,
        steps: int = 0,
    ) -> Float[Array, "*batch H Q"]:
        """The energy whose descent the update steps perform, at the state after ``steps`` updates.

        Per query and head, with the projected keys ``K`` as stored patterns and the state ``xi`` (the projected
        query after ``steps`` updates ``xi <- K^T Sep(beta K xi)``):

            E(xi) = 1/2 <xi, xi> - Psi*_alpha(beta, K xi),

        :func:`dammem.energies.sparse_hopfield_energy` (Wu et al. (2024), eqs. 2.2-2.3): at alpha = 1 (softmax)
        ``1/2 <xi, xi> - lse(beta, K xi)``, the energy of Ramsauer et al. (2021), eq. 2, without its constants. Each
        update step is a CCCP step of it and never increases it (Wu et al. (2024), Thm. 2.1). Masks, ``tol`` and a
        callable separation have no energy here; grouped-query heads use their group's keys.

        Args:
          inputs_q: queries ``(..., Q, in_features)``.
          inputs_k: keys ``(..., S, in_kv_features)``; default ``inputs_q``.
          steps: the number of state updates before the energy is taken (0: the projected query).

        Returns:
          ``(..., H, Q)``.
        """
        context = f"{type(self).__name__}.energy"
        if callable(self.separation):
            raise ValueError(f"{context}: a callable separation has no energy; use a named separation")
        steps = check_int(steps, "steps", context)
        inputs_k = inputs_q if inputs_k is None else inputs_k
        inputs_q, inputs_k = jnp.asarray(inputs_q), jnp.asarray(inputs_k)
        self._check_inputs(inputs_q, inputs_k, inputs_k)
        query, key, _ = self._project(inputs_q, inputs_k, inputs_k, None)
        key, _, _ = self._append_patterns(key, key, None, None)  # the bias and zero patterns are stored too
        beta, alpha = self.beta, self.alpha
        state = query
        if steps > 0:  # the read-out of the keys themselves is the state after the updates
            state = hopfield_attention(
                query, key, key, beta=beta, separation=self.separation, alpha=self._alpha_argument(),
                update_steps=steps, precision=self.precision,
            )  # fmt: skip
        key = jnp.repeat(key, self.num_heads // self.num_kv_heads, axis=-2)
        batch = np.broadcast_shapes(state.shape[:-3], key.shape[:-3])
        state = jnp.broadcast_to(state, batch + state.shape[-3:]).reshape((-1,) + state.shape[-3:])
        key = jnp.broadcast_to(key, batch + key.shape[-3:]).reshape((-1,) + key.shape[-3:])
        per_head = (jnp.broadcast_to(beta, (self.num_heads,)), jnp.broadcast_to(alpha, (self.num_heads,)))
        one = jax.vmap(sparse_hopfield_energy, in_axes=(0, None, None, None))  # over the queries
        heads = jax.vmap(one, in_axes=(1, 1, 0, 0))  # over the heads: state (Q, H, D), keys (S, H, D)
        energies = jax.vmap(heads, in_axes=(0, 0, None, None))(state, key, *per_head)
        return energies.reshape(batch + energies.shape[-2:])

    def init_cache(self, input_shape: Shape, dtype: Dtype = jnp.float32) -> None:
        """Set up an empty key/value cache for decoding one position per call.

        Args:
          input_shape: ``(batch..., max_length, features)``, the shape of the whole sequence to decode.
          dtype: the cache's dtype.
        """
        shape = (*input_shape[:-1], self.num_kv_heads, self.head_dim)
        self.cached_key = nnx.Cache(jnp.zeros(shape, dtype))
        self.cached_value = nnx.Cache(jnp.zeros(shape, dtype))
        self.cache_index = nnx.Cache(jnp.array(0, dtype=jnp.int32))
