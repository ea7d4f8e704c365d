"""KROP clean-up vs dense codebooks and torchhd; same as `dammem bench krop [args]`."""

from dammem.benchmarks.krop import main

raise SystemExit(main())
