"""Experiments after Wu, Hu, Hsiao, Liu (2024), Uniform Memory Retrieval with Larger Capacity for Modern Hopfield
Models (ICML)."""
