"""Regenerate the real-image subsets bundled in ``dammem/data/`` from the project's shared data folder.

Usage (from the repository root)::

    python scripts/make_bundled_data.py [--source ../shared/data]

Writes ``dammem/data/mnist_test_first2000.npz`` (the first 2000 MNIST test images) and
``dammem/data/cifar10_train_first500.npz`` (the first 500 images of CIFAR-10 ``data_batch_1``), each with arrays
``x`` (uint8) and ``y`` (uint8). The archives are deflate-compressed like ``np.savez_compressed`` but with fixed
zip timestamps, so running the script twice gives byte-identical files. Sizes (about 0.32 MB + 1.42 MB) keep the
bundle under 2 MB; see ``dammem/data/README.md`` for provenance and licences.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import zipfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET = ROOT / "dammem" / "data"

# (source file, bundled file, number of leading images kept, image shape)
SUBSETS = [
    ("mnist_test_2k.npz", "mnist_test_first2000.npz", 2000, (28, 28)),
    ("cifar10_train_2k.npz", "cifar10_train_first500.npz", 500, (32, 32, 3)),
]


def write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a deflate-compressed ``.npz`` (readable by ``np.load``) with a fixed timestamp: reproducible bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=pathlib.Path,
        default=ROOT.parent / "shared" / "data",
        help="folder holding mnist_test_2k.npz and cifar10_train_2k.npz",
    )
    args = parser.parse_args()
    TARGET.mkdir(parents=True, exist_ok=True)
    for source_name, target_name, n, image_shape in SUBSETS:
        with np.load(args.source / source_name, allow_pickle=False) as source:
            x, y = source["x"][:n], source["y"][:n]
        if x.shape != (n, *image_shape) or x.dtype != np.uint8 or y.shape != (n,) or y.dtype != np.uint8:
            raise ValueError(
                f"{args.source / source_name}: expected x uint8 {(n, *image_shape)} and y uint8 ({n},), "
                f"got x {x.dtype} {x.shape} and y {y.dtype} {y.shape}"
            )
        write_npz(TARGET / target_name, {"x": x, "y": y})
        print(f"{TARGET / target_name}: {n} images, {(TARGET / target_name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
