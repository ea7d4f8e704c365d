"""Real image data: bundled subsets and loaders for the standard MNIST / CIFAR-10 files, and images as patterns.

Shape legend: ``n`` images; ``H, W, C`` image height, width, channels (MNIST 28 x 28, CIFAR-10 32 x 32 x 3, HWC);
``D`` pattern dimension (``H * W * C``, the image flattened in C order).

Data. With ``path=None`` the loaders return small real subsets bundled in the package (``dammem/data``, credits in
its README): the first 2000 MNIST test images and the first 500 CIFAR-10 training images (:data:`BUNDLED_COUNTS`).
With a path they read the files a user downloads:

* MNIST: ``mnist.npz`` (keys ``x_train, y_train, x_test, y_test``, as distributed for Keras), or a directory with
  the four idx files ``train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
  t10k-labels-idx1-ubyte.gz`` (gzip-compressed or already decompressed, without ``.gz``).
* CIFAR-10: the directory of python pickle batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``) or the
  directory holding the extracted ``cifar-10-batches-py`` folder. Batches are unpickled with a loader that only
  accepts numpy arrays and plain containers, so a tampered file cannot run code.

Images come back as NumPy ``uint8`` arrays ``x`` of shape (n, 28, 28) or (n, 32, 32, 3) and labels ``y`` (n,)
``uint8`` in 0-9. A missing file or directory raises ``FileNotFoundError`` and a malformed one ``ValueError``; both
name the path and the expected format, and a file that cannot be decoded (cut short by an interrupted download or
copy, say) is called damaged. :func:`to_patterns` turns images into float32 patterns (n, D).

Query corruptions (masks, occlusions, noise, dropout, bit flips) live in :mod:`dammem.corruptions`.
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import os
import pathlib
import pickle
import typing
import zipfile
import zlib
from typing import Literal

import jax.numpy as jnp
import numpy as np

from dammem._types import Array, ArrayLike
from dammem._validate import check_int

__all__ = [
    "load_mnist",
    "load_cifar10",
    "load_cifar10_archive",
    "to_patterns",
    "Split",
    "PatternScale",
    "SPLITS",
    "BUNDLED_COUNTS",
    "PATTERN_SCALES",
]

Split = Literal["train", "test"]
PatternScale = Literal["unit", "bipolar", "centered"]
SPLITS: tuple[str, ...] = typing.get_args(Split)
PATTERN_SCALES: tuple[str, ...] = typing.get_args(PatternScale)

_NUM_CLASSES = 10
_MNIST_SHAPE = (28, 28)
_CIFAR_SHAPE = (32, 32, 3)

BUNDLED_COUNTS = {"mnist": 2000, "cifar10": 500}  # images in the bundled subsets (``path=None``)

# Bundled subsets: (resource file, split it comes from, number of images).
_BUNDLED_MNIST = ("mnist_test_first2000.npz", "test", BUNDLED_COUNTS["mnist"])
_BUNDLED_CIFAR10 = ("cifar10_train_first500.npz", "train", BUNDLED_COUNTS["cifar10"])

_MNIST_IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES_MAGIC, _IDX_LABELS_MAGIC = 2051, 2049  # 0x0803 / 0x0801: unsigned bytes, 3 / 1 big-endian dims
_MNIST_NPZ_FORMAT = "a .npz archive with uint8 arrays x_train (n, 28, 28), y_train (n,), x_test, y_test (mnist.npz)"
_MNIST_FORMATS = (
    f"{_MNIST_NPZ_FORMAT}, or a directory holding the MNIST idx files "
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz "
    "(gzip-compressed or not) or mnist.npz"
)

_CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR_SUBDIR = "cifar-10-batches-py"
_CIFAR_BATCH_FORMAT = (
    "a CIFAR-10 python batch: a pickled dict with b'data', a uint8 array (n, 3072) of CHW rows, and b'labels', "
    "n labels in 0-9"
)

# The unpickler for CIFAR batches resolves only these globals (numpy arrays, dtypes, scalars; bytes pickled by
# Python 3 at protocol < 3). numpy 2 renamed numpy.core to numpy._core; both spellings map to the installed one.
_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
_ALLOWED_GLOBALS = frozenset(
    {
        (f"{_NUMPY_CORE}.multiarray", "_reconstruct"),
        (f"{_NUMPY_CORE}.multiarray", "scalar"),
        (f"{_NUMPY_CORE}.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


# ----------------------------------------------------------------------------------------------------------------
# argument checks


def _check_split(split, context: str) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"{context}: split must be one of {SPLITS}, got {split!r}")
    return split


def _check_limit(limit, context: str) -> int | None:
    return None if limit is None else check_int(limit, "limit", context, minimum=1)


def _check_path(path, context: str) -> pathlib.Path:
    try:
        return pathlib.Path(os.fspath(path))
    except TypeError as err:
        raise TypeError(f"{context}: path must be None, a str or an os.PathLike, got {type(path).__name__}") from err


# ----------------------------------------------------------------------------------------------------------------
# loaders


def _take(x: np.ndarray, y: np.ndarray, limit: int | None, source: str, context: str) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` images (all when None) as fresh arrays; a limit beyond the available count is an error."""
    if limit is None:
        return x, y
    if limit > len(x):
        raise ValueError(f"{context}: limit={limit} exceeds the {len(x)} images in {source}")
    return x[:limit].copy(), y[:limit].copy()


def _check_arrays(x, y, image_shape: tuple[int, ...], source, names: tuple[str, str], expected: str, context: str):
    """Validate loaded images (n, *image_shape) uint8 and labels (n,) integers in 0-9; labels come back uint8."""
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.shape[1:] != image_shape:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        shape = ", ".join(map(str, image_shape))
        raise ValueError(
            f"{context}: {source}: {names[0]} must be uint8 of shape (n, {shape}), got {got}; expected {expected}"
        )
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{context}: {source}: {names[1]} must hold {len(x)} integer labels (one per image), "
            f"got {y.dtype} {y.shape}; expected {expected}"
        )
    if y.size and (y.min() < 0 or y.max() >= _NUM_CLASSES):
        raise ValueError(
            f"{context}: {source}: {names[1]} must lie in 0-{_NUM_CLASSES - 1}, got values in "
            f"[{y.min()}, {y.max()}]; expected {expected}"
        )
    return x, y.astype(np.uint8)


def _load_bundled(resource: str, context: str) -> tuple[np.ndarray, np.ndarray]:
    ref = importlib.resources.files("dammem") / "data" / resource
    try:
        raw = ref.read_bytes()
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{context}: the bundled data file {ref} is missing from the installed package; "
            "reinstall dammem or pass path= to a downloaded copy"
        ) from err
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return archive["x"], archive["y"]
    except (OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{context}: the bundled data file {ref} is damaged (truncated or corrupt: {err}); reinstall dammem or "
            "pass path= to a downloaded copy"
        ) from err


def _bundled(spec: tuple[str, str, int], dataset: str, split: str, limit, context: str):
    resource, bundled_split, count = spec
    if split != bundled_split:
        raise ValueError(
            f"{context}: the bundled {dataset} subset holds only split={bundled_split!r} (the first "
            f"{count} images); got split={split!r}: pass path= to the downloaded {dataset} files for it"
        )
    x, y = _load_bundled(resource, context)
    return _take(x, y, limit, f"the bundled {dataset} subset", context)


def _read_npz_split(path: pathlib.Path, split: str, context: str) -> tuple[np.ndarray, np.ndarray]:
    keys = (f"x_{split}", f"y_{split}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{context}: {path} is damaged (truncated or corrupt?): not a readable .npz archive ({err}); "
            f"expected {_MNIST_NPZ_FORMAT}"
        ) from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{context}: {path} holds a single .npy array, not an archive; expected {_MNIST_NPZ_FORMAT}")
    with archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise ValueError(
                f"{context}: {path} lacks the keys {missing} (it has {sorted(archive.files)}); "
                f"expected {_MNIST_NPZ_FORMAT}"
            )
        try:
            x, y = archive[keys[0]], archive[keys[1]]
        except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as err:
            raise ValueError(
                f"{context}: {path} is damaged (truncated or corrupt): could not read {keys} ({err}); "
                f"expected {_MNIST_NPZ_FORMAT}"
            ) from err
    return _check_arrays(x, y, _MNIST_SHAPE, path, keys, _MNIST_NPZ_FORMAT, context)


def _find_idx(directory: pathlib.Path, name: str) -> pathlib.Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: pathlib.Path, magic: int, dims: tuple[int | None, ...], context: str) -> np.ndarray:
    """Parse an idx file of unsigned bytes: big-endian int32 magic, one big-endian uint32 per dim, then the data.

    ``dims`` gives the expected sizes, None where any size is allowed (the item count).
    """
    kind = "image" if magic == _IDX_IMAGES_MAGIC else "label"
    expected = (
        f"an MNIST idx {kind} file (magic number {magic}, then {len(dims)} big-endian uint32 sizes, "
        "then unsigned bytes)"
    )
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(
            f"{context}: {path} is damaged (truncated or corrupt) and could not be read ({err}); expected {expected}"
            + (", gzip-compressed" if path.suffix == ".gz" else "")
        ) from err
    header = 4 + 4 * len(dims)
    if len(raw) < header:
        raise ValueError(f"{context}: {path} is {len(raw)} bytes, too short for the idx header; expected {expected}")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{context}: {path} has magic number {found}; expected {expected}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=len(dims), offset=4))
    if any(want is not None and got != want for got, want in zip(shape, dims)):
        want = tuple("n" if d is None else d for d in dims)
        raise ValueError(f"{context}: {path} declares sizes {shape}, expected {want}; expected {expected}")
    size = int(np.prod(shape))
    if len(raw) - header < size:
        raise ValueError(
            f"{context}: {path} is damaged (truncated): it holds {len(raw) - header} data bytes but its header declares "
            f"{shape} = {size}; expected {expected}"
        )
    if len(raw) - header != size:
        raise ValueError(
            f"{context}: {path} holds {len(raw) - header} data bytes but its header declares {shape} = "
            f"{size}; expected {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _read_mnist_idx(images: pathlib.Path, labels: pathlib.Path, context: str) -> tuple[np.ndarray, np.ndarray]:
    x = _read_idx(images, _IDX_IMAGES_MAGIC, (None, *_MNIST_SHAPE), context)
    y = _read_idx(labels, _IDX_LABELS_MAGIC, (None,), context)
    if len(x) != len(y):
        raise ValueError(
            f"{context}: {images} holds {len(x)} images but {labels} holds {len(y)} labels; expected one label per image"
        )
    return _check_arrays(x, y, _MNIST_SHAPE, images.parent, (images.name, labels.name), _MNIST_FORMATS, context)


def load_mnist(
    path: str | os.PathLike | None = None, split: Split = "test", *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST handwritten digits: the bundled subset, or the standard files from ``path``.

    Args:
      path: None for the bundled subset (the first 2000 test images, ``split="test"`` only); otherwise a
        ``mnist.npz`` file (keys ``x_train, y_train, x_test, y_test``) or a directory holding the four idx files
        (``train-images-idx3-ubyte.gz`` ... ``t10k-labels-idx1-ubyte.gz``, gzip-compressed or not) or ``mnist.npz``.
      split: ``"train"`` (60000 images in the full set) or ``"test"`` (10000).
      limit: keep only the first ``limit`` images (a positive int, at most the number available); None keeps all.

    Returns:
      ``(x, y)``: images ``x`` (n, 28, 28) uint8 in 0-255 and labels ``y`` (n,) uint8 in 0-9, NumPy arrays in file
      order.

    Raises:
      FileNotFoundError: ``path`` (or the files expected inside it) does not exist; the message names the formats.
      ValueError: a malformed file (bad keys, magic number, sizes, dtype or labels), a bad ``split`` or ``limit``,
        or a split the bundled subset does not hold.

    Example:
      >>> x, y = load_mnist(limit=100)  # the bundled subset
      >>> x.shape, x.dtype, y.shape
      ((100, 28, 28), dtype('uint8'), (100,))
    """
    context = "load_mnist"
    split, limit = _check_split(split, context), _check_limit(limit, context)
    if path is None:
        return _bundled(_BUNDLED_MNIST, "MNIST", split, limit, context)
    path = _check_path(path, context)
    if path.is_dir():
        images, labels = (_find_idx(path, name) for name in _MNIST_IDX[split])
        if images is not None and labels is not None:
            x, y = _read_mnist_idx(images, labels, context)
        elif (path / "mnist.npz").is_file():
            x, y = _read_npz_split(path / "mnist.npz", split, context)
        else:
            names = " and ".join(f"{name}.gz" for name in _MNIST_IDX[split])
            raise FileNotFoundError(
                f"{context}: directory {path} holds neither {names} (for split={split!r}) nor "
                f"mnist.npz; expected {_MNIST_FORMATS}"
            )
    elif path.is_file():
        x, y = _read_npz_split(path, split, context)
    else:
        raise FileNotFoundError(f"{context}: {path} does not exist; expected {_MNIST_FORMATS}")
    return _take(x, y, limit, str(path), context)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays only; any other global is refused (no code runs)."""

    def find_class(self, module: str, name: str):
        for old in ("numpy.core.", "numpy._core."):
            if module.startswith(old):
                module = _NUMPY_CORE + "." + module[len(old) :]
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: pathlib.Path, context: str) -> tuple[np.ndarray, np.ndarray]:
    """One python batch: (n, 3072) CHW rows become (n, 32, 32, 3) HWC images."""
    with open(path, "rb") as f:
        try:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        except Exception as err:  # arbitrary bytes can fail in the unpickler in many ways (EOF, bad opcode, ...)
            raise ValueError(
                f"{context}: {path} is damaged (truncated or corrupt?) or not a readable pickle "
                f"({type(err).__name__}: {err}); "
                f"expected {_CIFAR_BATCH_FORMAT}"
            ) from err
    if not isinstance(batch, dict):
        raise ValueError(f"{context}: {path} holds a {type(batch).__name__}, not a dict; expected {_CIFAR_BATCH_FORMAT}")
    fields = {}
    for key in ("data", "labels"):  # the official files (Python 2 pickles) have bytes keys; re-pickled ones str keys
        value = batch.get(key.encode(), batch.get(key))
        if value is None:
            raise ValueError(
                f"{context}: {path} has no {key!r} entry (keys {sorted(map(repr, batch))}); "
                f"expected {_CIFAR_BATCH_FORMAT}"
            )
        fields[key] = value
    data = fields["data"]
    row = int(np.prod(_CIFAR_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(
            f"{context}: {path}: data must be a uint8 array (n, {row}), got {got}; expected {_CIFAR_BATCH_FORMAT}"
        )
    h, w, c = _CIFAR_SHAPE
    x = data.reshape(-1, c, h, w).transpose(0, 2, 3, 1)
    try:
        labels = np.asarray(fields["labels"])
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{context}: {path}: labels are not a list of ints ({err}); expected {_CIFAR_BATCH_FORMAT}"
        ) from err
    return _check_arrays(x, labels, _CIFAR_SHAPE, path, ("data", "labels"), _CIFAR_BATCH_FORMAT, context)


def load_cifar10(
    path: str | os.PathLike | None = None, split: Split = "train", *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 colour images: the bundled subset, or the python pickle batches from ``path``.

    Train images are ``data_batch_1`` ... ``data_batch_5`` in order; batches past ``limit`` are not read.

    Args:
      path: None for the bundled subset (the first 500 images of ``data_batch_1``, ``split="train"`` only);
        otherwise the directory holding ``data_batch_1`` ... ``data_batch_5`` and ``test_batch`` (the
        ``cifar-10-batches-py`` folder of ``cifar-10-python.tar.gz``) or the directory containing that folder.
      split: ``"train"`` (50000 images in the full set) or ``"test"`` (10000).
      limit: keep only the first ``limit`` images (a positive int, at most the number available); None keeps all.

    Returns:
      ``(x, y)``: images ``x`` (n, 32, 32, 3) uint8 HWC RGB and labels ``y`` (n,) uint8 in 0-9, NumPy arrays in
      file order.

    Raises:
      FileNotFoundError: ``path`` is not a directory or lacks a batch file of the split; the message names the files.
      ValueError: a malformed batch (not a pickle, not a dict, missing keys, wrong dtype or sizes, bad labels, or a
        global other than numpy's array reconstructors), a bad ``split`` or ``limit``, or a split the bundled
        subset does not hold.

    Example:
      >>> x, y = load_cifar10(limit=10)  # the bundled subset
      >>> x.shape, x.dtype, y.shape
      ((10, 32, 32, 3), dtype('uint8'), (10,))
    """
    context = "load_cifar10"
    split, limit = _check_split(split, context), _check_limit(limit, context)
    if path is None:
        return _bundled(_BUNDLED_CIFAR10, "CIFAR-10", split, limit, context)
    path = _check_path(path, context)
    names = _CIFAR_BATCHES[split]
    expected = (
        f"a directory holding the CIFAR-10 python batches {', '.join(names)} (the {_CIFAR_SUBDIR} folder "
        f"from cifar-10-python.tar.gz) or the directory containing {_CIFAR_SUBDIR}"
    )
    if not path.is_dir():
        state = "is a file, not a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{context}: {path} {state}; expected {expected}")
    folder = next((d for d in (path, path / _CIFAR_SUBDIR) if all((d / n).is_file() for n in names)), None)
    if folder is None:
        missing = [n for n in names if not (path / n).is_file()]
        raise FileNotFoundError(
            f"{context}: {path} lacks {', '.join(missing)} (and has no complete {_CIFAR_SUBDIR} "
            f"folder); expected {expected}"
        )
    xs, ys, count = [], [], 0
    for name in names:
        x, y = _read_cifar_batch(folder / name, context)
        xs.append(x)
        ys.append(y)
        count += len(x)
        if limit is not None and count >= limit:
            break
    x = np.concatenate(xs, out=np.empty((count, *_CIFAR_SHAPE), np.uint8))  # one copy, C-contiguous HWC
    y = np.concatenate(ys)
    return _take(x, y, limit, str(folder), context)


_ARCHIVE_FORMAT = "a .npz archive with arrays x (n, 32, 32, 3) uint8 HWC RGB and y (n,) labels in 0-9"


def load_cifar10_archive(path: str | os.PathLike, *, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 images from an ``.npz`` archive in the format of the bundled subset (keys ``x``, ``y``).

    The format lets a subset of the standard batches travel as one file (the bundled first 500 training images are
    one); :func:`load_cifar10` reads the standard python batches themselves.

    Args:
      path: the archive.
      limit: keep only the first ``limit`` images (a positive int, at most the number available); None keeps all.

    Returns:
      ``(x, y)``: images ``x`` (n, 32, 32, 3) uint8 HWC RGB and labels ``y`` (n,) uint8 in 0-9, in file order.

    Raises:
      FileNotFoundError: ``path`` is not a file.
      ValueError: the file is not a readable archive, lacks ``x`` or ``y``, or holds arrays of the wrong dtype,
        shape or labels; or a bad ``limit``.

    Example:
      >>> import tempfile, os
      >>> x0, y0 = load_cifar10(limit=3)
      >>> path = os.path.join(tempfile.mkdtemp(), "subset.npz")
      >>> np.savez(path, x=x0, y=y0)
      >>> x, y = load_cifar10_archive(path)
      >>> x.shape, bool((x == x0).all())
      ((3, 32, 32, 3), True)
    """
    context = "load_cifar10_archive"
    limit = _check_limit(limit, context)
    path = _check_path(path, context)
    if not path.is_file():
        state = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"{context}: {path} {state}; expected {_ARCHIVE_FORMAT}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an archive")
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise ValueError(f"lacks the keys {missing} (it has {sorted(archive.files)})")
            x, y = archive["x"], archive["y"]
    except (OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise ValueError(f"{context}: {path} is not a readable archive ({err}); expected {_ARCHIVE_FORMAT}") from err
    x, y = _check_arrays(x, y, _CIFAR_SHAPE, path, ("x", "y"), _ARCHIVE_FORMAT, context)
    return _take(x, y, limit, str(path), context)


# ----------------------------------------------------------------------------------------------------------------
# patterns


def to_patterns(x: ArrayLike, *, scale: PatternScale = "unit") -> Array:
    """Flatten uint8 images to float32 patterns, one per row (C order, so HWC pixels stay together).

    ``"unit"``: ``x / 255`` in [0, 1]; ``"bipolar"``: ``2 x / 255 - 1`` in [-1, 1]; ``"centered"``: each row minus
    its mean, divided by its L2 norm (zero-mean unit-norm rows; a constant image gives a zero row).

    Args:
      x: images (n, ...) of dtype uint8, e.g. (n, 28, 28) or (n, 32, 32, 3); the first axis indexes images.
      scale: one of ``PATTERN_SCALES``.

    Returns:
      Patterns (n, D) float32 with ``D`` the product of the other axes.

    Example:
      >>> to_patterns(np.array([[[0, 255]]], np.uint8), scale="bipolar").tolist()
      [[-1.0, 1.0]]
    """
    context = "to_patterns"
    if not isinstance(scale, str) or scale not in PATTERN_SCALES:
        raise ValueError(f"{context}: scale must be one of {PATTERN_SCALES}, got {scale!r}")
    x = jnp.asarray(x)
    if x.dtype != jnp.uint8:
        raise TypeError(
            f"{context}: x must be uint8 images with values 0-255 (as returned by the loaders), got dtype "
            f"{x.dtype}; convert with x.astype(np.uint8) if they are pixel values"
        )
    if x.ndim < 2:
        raise ValueError(f"{context}: x must have shape (n, ...) with at least 2 dims, got shape {tuple(x.shape)}")
    flat = x.reshape(x.shape[0], -1).astype(jnp.float32)
    if scale == "unit":
        return flat / 255.0
    if scale == "bipolar":
        return (2.0 * flat - 255.0) / 255.0  # exact -1 and +1 at the ends
    centered = flat - jnp.mean(flat, axis=-1, keepdims=True)
    norm = jnp.linalg.norm(centered, axis=-1, keepdims=True)
    return centered / jnp.where(norm > 0, norm, 1.0)
