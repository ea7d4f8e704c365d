"""Experiments reproducing the source papers' tables and figures, grouped by paper; each module is one experiment.

``quickstart`` and ``capacity`` stand alone; ``drdam/`` follows Hoover et al. (2024), ``uhop/`` Wu et al. (2024)
and ``krop/`` Liu et al. (2025), with a ``common`` module where a paper's experiments share code. The names users type
(``dammem run uhop_retrieval_mnist``, ``dammem list``) are the keys of :data:`EXPERIMENTS` and the packaged configs.

See ``CONTRACT.md`` for the module interface and :func:`dammem.experiments._base.run_experiment` for how the CLI
runs one.
"""

from dammem.experiments._registry import EXPERIMENTS, get_experiment

__all__ = ["EXPERIMENTS", "get_experiment"]
