"""Experiments after Hoover et al. (2024), Dense Associative Memory Through the Lens of Random Features (NeurIPS)."""
