"""Experiments by name (each a module imported on first use) and the error every configuration problem raises.

Both :mod:`dammem.experiments` (the public registry) and :mod:`dammem.experiments._base` (configs and runs) build on
this module, which imports neither.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["ConfigError", "DEFAULT_CONFIGS", "EXPERIMENTS", "get_experiment"]


class ConfigError(ValueError):
    """A configuration problem: the message names the key, the value and what is allowed."""


EXPERIMENTS: dict[str, str] = {
    "quickstart": "dammem.experiments.quickstart",
    "capacity": "dammem.experiments.capacity",
    "krop_timing": "dammem.experiments.krop.timing",
    "krop_capacity": "dammem.experiments.krop.capacity",
    "krop_mutable": "dammem.experiments.krop.mutable",
    "uhop_retrieval": "dammem.experiments.uhop.retrieval",
    "uhop_classification": "dammem.experiments.uhop.classification",
    "drdam_approx": "dammem.experiments.drdam.approx",
    "drdam_retrieval": "dammem.experiments.drdam.retrieval",
    "drdam_images": "dammem.experiments.drdam.images",
    "drdam_basis": "dammem.experiments.drdam.basis",
}

DEFAULT_CONFIGS: tuple[str, ...] = (
    "quickstart",
    "capacity",
    "krop_timing",
    "krop_capacity",
    "krop_mutable",
    "uhop_retrieval_mnist",
    "uhop_retrieval_cifar10",
    "uhop_classification_mnist",
    "uhop_classification_cifar10",
    "drdam_approx",
    "drdam_approx_paper",
    "drdam_retrieval",
    "drdam_images",
    "drdam_images_paper",
    "drdam_basis",
)
"""The packaged configs whose default runs are committed under ``results/<config name>/`` (results.json,
summary.md, figures) and listed in the README's experiments table (``scripts/update_readme.py``), in table order."""


def get_experiment(name: str) -> ModuleType:
    """Import the experiment module registered under ``name``."""
    if not isinstance(name, str) or name not in EXPERIMENTS:
        raise ConfigError(f"experiment: unknown experiment {name!r}; known experiments are {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])
