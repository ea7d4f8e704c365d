"""Separations vs jax.nn.softmax and the PyTorch entmax package; same as `dammem bench separations [args]`."""

from dammem.benchmarks.separations import main

raise SystemExit(main())
