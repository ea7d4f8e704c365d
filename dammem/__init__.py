"""dammem: differentiable associative memory in JAX."""

__version__ = "0.1.0"
