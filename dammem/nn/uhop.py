"""``UHopHopfield``: the kernelized Hopfield layer of U-Hop, a learned linear kernel in front of a ``Hopfield`` layer.

Shape legend: ``...`` batch axes, ``Q`` query positions, ``S`` stored patterns (keys), ``F`` input features (the
kernel is ``F x F``), ``F_out`` output features.

Wu et al. (2024), eq. 3.1: the U-Hop layer applies a learned feature map ``Phi(u) = W u`` to the queries and the
stored patterns before the Hopfield layer's projections, and reads out the patterns themselves,

    U-Hop(Xi, x) = Sep[beta (W_K Phi(Xi))^T W_Q Phi(x)] W_V W_K Xi,

so the association weights use the kernel ``K(u, v) = <Phi(u), Phi(v)>`` (eq. 2.1) and the values are not mapped
(the ViT layer of their eq. 4.1 is the same with ``X`` as both queries and patterns). Here the layer is
``Hopfield(Phi(inputs_q), Phi(inputs_k), inputs_v)``: a :class:`dammem.nn.Hopfield` (any separation, beta, update
steps, projections or pure retrieval) composed with ``W``, a :class:`dammem.nn.training.KernelParam`. With
``use_projections=False`` and one step, the output is U-Hop's kernelized retrieval ``Xi^T Sep(beta K(Xi, x))``
(eq. 2.4; :func:`dammem.uhop.kernel_update`).

``W`` is square (``F x F``, full rank at initialisation: their Assumption 2.1 with ``D_Phi = d``), so the same map
applies to queries and keys, and the key and value inputs share their width with the queries. It is initialised by
:func:`dammem.uhop.init_kernel`: ``"orthogonal"`` (default here) preserves the norms of the inputs, ``"identity"``
makes the layer start as the plain ``Hopfield`` layer, ``"gaussian"`` (unscaled, as in the public U-Hop code)
multiplies input norms by about ``sqrt(F)``.

The kernel is trained by the separation loss (:meth:`UHopHopfield.separation_loss`, eq. 3.2 by default), not by the
task loss: :func:`dammem.nn.training.alternating_step` runs Alg. 2 of Wu et al. (2024).

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Float

from dammem import uhop
from dammem._types import Array, ArrayLike
from dammem.nn.attention import Hopfield
from dammem.nn.training import KernelParam

__all__ = ["UHopHopfield"]

_LOSSES = ("deep", "average")


class UHopHopfield(nnx.Module):
    """A ``Hopfield`` layer with U-Hop's learned kernel ``Phi(u) = W u`` on its queries and keys (Wu et al. (2024),
    eq. 3.1).

    ``out = Hopfield(W x_q, W x_k, x_v)``; every argument other than ``kernel_init`` and ``rngs`` goes to
    :class:`dammem.nn.Hopfield` unchanged (the constructor of ``flax.nnx.MultiHeadAttention`` plus
    ``separation``, ``beta``, ``alpha``, ``update_steps``, ``tol``, ``use_projections``...). The wrapped layer is
    ``self.hopfield``; ``W`` is ``self.kernel``, a :class:`dammem.nn.training.KernelParam` of shape
    ``(in_features, in_features)``.

    Args:
      num_heads: heads of the Hopfield layer.
      in_features: features ``F`` of the queries, keys and values (the kernel is ``F x F``; ``in_kv_features``, if
        given, must equal it).
      *args: further positional arguments of :class:`dammem.nn.Hopfield` (``qkv_features``, ``out_features``).
      kernel_init: ``"orthogonal"``, ``"identity"`` or ``"gaussian"`` (:func:`dammem.uhop.init_kernel`).
      rngs: ``nnx.Rngs``; the Hopfield layer draws from ``params`` first (so its parameters equal those of a plain
        ``Hopfield`` built from the same ``rngs``), then the kernel.
      **kwargs: keyword arguments of :class:`dammem.nn.Hopfield`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> layer = UHopHopfield(2, 8, separation="sparsemax", rngs=nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (3, 5, 8))  # 3 sets of 5 patterns
      >>> layer(x[:, :1], x).shape  # the first pattern of each set as the query
      (3, 1, 8)
      >>> float(layer.separation_loss(x)) < 0.0  # eq. 3.2 on each set, averaged over the 3 sets
      True
    """

    def __init__(self, num_heads: int, in_features: int, *args, kernel_init: str = "orthogonal", rngs: nnx.Rngs,
                 **kwargs):  # fmt: skip
        context = type(self).__name__
        in_kv = kwargs.get("in_kv_features")
        if in_kv is not None and in_kv != in_features:
            raise ValueError(
                f"{context}: in_kv_features={in_kv!r} must equal in_features={in_features!r}: one kernel W maps the "
                "queries and the keys, and the values keep the keys' width"
            )
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"{context}: rngs must be an nnx.Rngs (the kernel is random), got {type(rngs).__name__}")
        self.hopfield = Hopfield(num_heads, in_features, *args, rngs=rngs, **kwargs)
        if not isinstance(kernel_init, str) or kernel_init not in uhop.INITS:
            raise ValueError(f"{context}: kernel_init must be one of {list(uhop.INITS)}, got {kernel_init!r}")
        dtype = kwargs.get("param_dtype", jnp.float32)
        self.kernel = KernelParam(uhop.init_kernel(rngs.params(), (in_features, in_features), kernel_init, dtype))
        self.in_features = in_features

    def features(self, x: Float[ArrayLike, "... F"]) -> Float[Array, "... F"]:
        """The kernel map ``Phi(x) = W x`` on the last axis (Wu et al. (2024), eq. 2.1)."""
        x = jnp.asarray(x)
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"{type(self).__name__}: inputs must have in_features={self.in_features} features on the last axis, "
                f"got shape {tuple(x.shape)}"
            )
        return jnp.einsum("...d,fd->...f", x, self.kernel[...])

    def __call__(
        self,
        inputs_q: Float[ArrayLike, "*batch Q F"],
        inputs_k: Float[ArrayLike, "*batch S F"] | None = None,
        inputs_v: Float[ArrayLike, "*batch S F"] | None = None,
        **kwargs,
    ) -> Float[Array, "*batch Q F_out"]:
        """``Hopfield(Phi(inputs_q), Phi(inputs_k), inputs_v, **kwargs)`` (Wu et al. (2024), eq. 3.1).

        Args:
          inputs_q: queries ``(..., Q, F)``.
          inputs_k: stored patterns ``(..., S, F)``; default ``inputs_q`` (self-attention).
          inputs_v: values ``(..., S, F)``; default ``inputs_k`` (not mapped by the kernel).
          **kwargs: the call arguments of :class:`dammem.nn.Hopfield` (``mask``, ``deterministic``, ``rngs``,
            ``sow_weights``, ``decode``, ``is_causal``).

        Returns:
          The Hopfield layer's output ``(..., Q, F_out)``.
        """
        if inputs_k is None:
            if inputs_v is not None:
                raise ValueError(
                    f"{type(self).__name__}: inputs_k cannot be None when inputs_v is given (pass inputs_k and leave "
                    "inputs_v None to use the same array for both)"
                )
            inputs_k = inputs_q
        if inputs_v is None:
            inputs_v = inputs_k
        return self.hopfield(self.features(inputs_q), self.features(inputs_k), inputs_v, **kwargs)

    def separation_loss(
        self, memories: Float[ArrayLike, "*batch S F"], *, temperature: ArrayLike = 2.0, loss: str = "deep"
    ) -> Float[Array, ""]:
        """The kernel's separation loss on stored patterns, averaged over the batch axes.

        ``memories[b]`` (S, F) is one memory set: the patterns one call of the layer retrieves among (the key
        tokens of one image in a ViT). The loss is :func:`dammem.uhop.separation_loss` of each set under ``W``
        (``"deep"``: Wu et al. (2024), eq. 3.2; ``"average"``: eq. 2.6), then the mean over the sets. Sets are
        not pooled: patterns of different sets never compete in one retrieval, and Thm. 3.1 of Wu et al. (2024)
        asks for the patterns of one set to be separated (orthogonal features need ``S <= F``).

        Args:
          memories: ``(S, F)`` one set or ``(..., S, F)`` several, ``S >= 2``.
          temperature: ``t > 0`` (2 in Wu et al. (2024)).
          loss: ``"deep"`` (eq. 3.2) or ``"average"`` (eq. 2.6).

        Returns:
          A scalar (<= 0), differentiable in the kernel (and in the memories).
        """
        context = f"{type(self).__name__}.separation_loss"
        if loss not in _LOSSES:
            raise ValueError(f"{context}: loss must be one of {list(_LOSSES)}, got {loss!r}")
        memories = jnp.asarray(memories)
        if memories.ndim < 2 or memories.shape[-1] != self.in_features or memories.shape[-2] < 2:
            raise ValueError(
                f"{context}: memories must have shape (..., S, in_features={self.in_features}) with S >= 2, got "
                f"{tuple(memories.shape)}"
            )
        sets = memories.reshape((-1,) + memories.shape[-2:])
        weight = self.kernel[...]
        values = jax.vmap(lambda m: uhop.separation_loss(weight, m, temperature=temperature, loss=loss))(sets)
        return jnp.mean(values)
