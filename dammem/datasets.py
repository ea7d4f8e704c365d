"""Real image data (bundled subsets and loaders for the standard MNIST / CIFAR-10 files) and query corruptions.

Shape legend: ``n`` images; ``H, W, C`` image height, width, channels (MNIST 28 x 28, CIFAR-10 32 x 32 x 3, HWC);
``D`` pattern dimension (``H * W * C``, the image flattened in C order); ``...`` any leading batch axes.

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
name the path and the expected format. :func:`to_patterns` turns images into float32 patterns (n, D).

Corruptions (pure functions, batched over leading axes, jit-friendly; masks say True = visible, Flax polarity):

* :func:`random_pixel_mask`: exactly ``round(visible_fraction * D)`` visible entries per pattern, uniformly placed.
* :func:`half_occlusion_mask`: the top / bottom / left / right half of an image hidden.
* :func:`occlude`: hidden entries replaced by a fill value.
* :func:`gaussian_noise`: additive noise of L2 norm exactly ``norm`` per pattern, direction uniform on the sphere.
* :func:`inverted_dropout`: Bernoulli dropout with survivors scaled by ``1 / (1 - p)`` (public U-Hop code protocol).
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import numbers
import os
import pathlib
import pickle
import zipfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from dammem._types import Array, ArrayLike, PRNGKey
from dammem._validate import check_floating, check_int, check_positive, is_concrete

__all__ = [
    "load_mnist",
    "load_cifar10",
    "to_patterns",
    "random_pixel_mask",
    "half_occlusion_mask",
    "occlude",
    "gaussian_noise",
    "inverted_dropout",
    "SPLITS",
    "BUNDLED_COUNTS",
    "PATTERN_SCALES",
    "OCCLUDED_HALVES",
]

SPLITS = ("train", "test")
PATTERN_SCALES = ("unit", "bipolar", "centered")
OCCLUDED_HALVES = ("bottom", "top", "left", "right")

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


def _check_split(split, where: str) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"{where}: split must be one of {SPLITS}, got {split!r}")
    return split


def _check_limit(limit, where: str) -> int | None:
    return None if limit is None else check_int(limit, "limit", where, minimum=1)


def _check_path(path, where: str) -> pathlib.Path:
    try:
        return pathlib.Path(os.fspath(path))
    except TypeError as err:
        raise TypeError(f"{where}: path must be None, a str or an os.PathLike, got {type(path).__name__}") from err


def _check_fraction(value, name: str, where: str):
    """For concrete scalars: 0 <= value <= 1. Traced values pass unchecked."""
    if not is_concrete(value):
        return value
    arr = np.asarray(value)
    if arr.ndim != 0 or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{where}: {name} must be a real scalar, got {value!r}")
    if not 0.0 <= float(arr) <= 1.0:
        raise ValueError(f"{where}: {name} must lie in [0, 1], got {float(arr)}")
    return value


def _check_shape(shape, name: str, where: str) -> tuple[int, ...]:
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or len(shape) == 0:
        raise TypeError(f"{where}: {name} must be a non-empty tuple of ints, got {shape!r}")
    return tuple(
        check_int(s, f"{name}[{i}]", where, minimum=1 if i == len(shape) - 1 else 0) for i, s in enumerate(shape)
    )


# ----------------------------------------------------------------------------------------------------------------
# loaders


def _take(x: np.ndarray, y: np.ndarray, limit: int | None, source: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` images (all when None) as fresh arrays; a limit beyond the available count is an error."""
    if limit is None:
        return x, y
    if limit > len(x):
        raise ValueError(f"{where}: limit={limit} exceeds the {len(x)} images in {source}")
    return x[:limit].copy(), y[:limit].copy()


def _check_arrays(x, y, image_shape: tuple[int, ...], source, names: tuple[str, str], expected: str, where: str):
    """Validate loaded images (n, *image_shape) uint8 and labels (n,) integers in 0-9; labels come back uint8."""
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.shape[1:] != image_shape:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        shape = ", ".join(map(str, image_shape))
        raise ValueError(
            f"{where}: {source}: {names[0]} must be uint8 of shape (n, {shape}), got {got}; expected {expected}"
        )
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{where}: {source}: {names[1]} must hold {len(x)} integer labels (one per image), "
            f"got {y.dtype} {y.shape}; expected {expected}"
        )
    if y.size and (y.min() < 0 or y.max() >= _NUM_CLASSES):
        raise ValueError(
            f"{where}: {source}: {names[1]} must lie in 0-{_NUM_CLASSES - 1}, got values in "
            f"[{y.min()}, {y.max()}]; expected {expected}"
        )
    return x, y.astype(np.uint8)


def _load_bundled(resource: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    ref = importlib.resources.files("dammem") / "data" / resource
    try:
        raw = ref.read_bytes()
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{where}: the bundled data file {ref} is missing from the installed package; "
            "reinstall dammem or pass path= to a downloaded copy"
        ) from err
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
        return archive["x"], archive["y"]


def _bundled(spec: tuple[str, str, int], dataset: str, split: str, limit, where: str):
    resource, bundled_split, count = spec
    if split != bundled_split:
        raise ValueError(
            f"{where}: the bundled {dataset} subset holds only split={bundled_split!r} (the first "
            f"{count} images); got split={split!r}: pass path= to the downloaded {dataset} files for it"
        )
    x, y = _load_bundled(resource, where)
    return _take(x, y, limit, f"the bundled {dataset} subset", where)


def _read_npz_split(path: pathlib.Path, split: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    keys = (f"x_{split}", f"y_{split}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{where}: {path} is not a readable .npz archive ({err}); expected {_MNIST_NPZ_FORMAT}"
        ) from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{where}: {path} holds a single .npy array, not an archive; expected {_MNIST_NPZ_FORMAT}")
    with archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise ValueError(
                f"{where}: {path} lacks the keys {missing} (it has {sorted(archive.files)}); "
                f"expected {_MNIST_NPZ_FORMAT}"
            )
        try:
            x, y = archive[keys[0]], archive[keys[1]]
        except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as err:
            raise ValueError(f"{where}: {path}: could not read {keys} ({err}); expected {_MNIST_NPZ_FORMAT}") from err
    return _check_arrays(x, y, _MNIST_SHAPE, path, keys, _MNIST_NPZ_FORMAT, where)


def _find_idx(directory: pathlib.Path, name: str) -> pathlib.Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: pathlib.Path, magic: int, dims: tuple[int | None, ...], where: str) -> np.ndarray:
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
            f"{where}: {path} could not be read ({err}); expected {expected}"
            + (", gzip-compressed" if path.suffix == ".gz" else "")
        ) from err
    header = 4 + 4 * len(dims)
    if len(raw) < header:
        raise ValueError(f"{where}: {path} is {len(raw)} bytes, too short for the idx header; expected {expected}")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{where}: {path} has magic number {found}; expected {expected}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=len(dims), offset=4))
    if any(want is not None and got != want for got, want in zip(shape, dims)):
        want = tuple("n" if d is None else d for d in dims)
        raise ValueError(f"{where}: {path} declares sizes {shape}, expected {want}; expected {expected}")
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise ValueError(
            f"{where}: {path} holds {len(raw) - header} data bytes but its header declares {shape} = "
            f"{size}; expected {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _read_mnist_idx(images: pathlib.Path, labels: pathlib.Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    x = _read_idx(images, _IDX_IMAGES_MAGIC, (None, *_MNIST_SHAPE), where)
    y = _read_idx(labels, _IDX_LABELS_MAGIC, (None,), where)
    if len(x) != len(y):
        raise ValueError(
            f"{where}: {images} holds {len(x)} images but {labels} holds {len(y)} labels; expected one label per image"
        )
    return _check_arrays(x, y, _MNIST_SHAPE, images.parent, (images.name, labels.name), _MNIST_FORMATS, where)


def load_mnist(
    path: str | os.PathLike | None = None, split: str = "test", *, limit: int | None = None
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
    where = "load_mnist"
    split, limit = _check_split(split, where), _check_limit(limit, where)
    if path is None:
        return _bundled(_BUNDLED_MNIST, "MNIST", split, limit, where)
    path = _check_path(path, where)
    if path.is_dir():
        images, labels = (_find_idx(path, name) for name in _MNIST_IDX[split])
        if images is not None and labels is not None:
            x, y = _read_mnist_idx(images, labels, where)
        elif (path / "mnist.npz").is_file():
            x, y = _read_npz_split(path / "mnist.npz", split, where)
        else:
            names = " and ".join(f"{name}.gz" for name in _MNIST_IDX[split])
            raise FileNotFoundError(
                f"{where}: directory {path} holds neither {names} (for split={split!r}) nor "
                f"mnist.npz; expected {_MNIST_FORMATS}"
            )
    elif path.is_file():
        x, y = _read_npz_split(path, split, where)
    else:
        raise FileNotFoundError(f"{where}: {path} does not exist; expected {_MNIST_FORMATS}")
    return _take(x, y, limit, str(path), where)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays only; any other global is refused (no code runs)."""

    def find_class(self, module: str, name: str):
        for old in ("numpy.core.", "numpy._core."):
            if module.startswith(old):
                module = _NUMPY_CORE + "." + module[len(old) :]
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: pathlib.Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One python batch: (n, 3072) CHW rows become (n, 32, 32, 3) HWC images."""
    with open(path, "rb") as f:
        try:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        except Exception as err:  # arbitrary bytes can fail in the unpickler in many ways (EOF, bad opcode, ...)
            raise ValueError(
                f"{where}: {path} is not a readable pickle ({type(err).__name__}: {err}); "
                f"expected {_CIFAR_BATCH_FORMAT}"
            ) from err
    if not isinstance(batch, dict):
        raise ValueError(f"{where}: {path} holds a {type(batch).__name__}, not a dict; expected {_CIFAR_BATCH_FORMAT}")
    fields = {}
    for key in ("data", "labels"):  # the official files (Python 2 pickles) have bytes keys; re-pickled ones str keys
        value = batch.get(key.encode(), batch.get(key))
        if value is None:
            raise ValueError(
                f"{where}: {path} has no {key!r} entry (keys {sorted(map(repr, batch))}); "
                f"expected {_CIFAR_BATCH_FORMAT}"
            )
        fields[key] = value
    data = fields["data"]
    row = int(np.prod(_CIFAR_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(
            f"{where}: {path}: data must be a uint8 array (n, {row}), got {got}; expected {_CIFAR_BATCH_FORMAT}"
        )
    h, w, c = _CIFAR_SHAPE
    x = data.reshape(-1, c, h, w).transpose(0, 2, 3, 1)
    try:
        labels = np.asarray(fields["labels"])
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: {path}: labels are not a list of ints ({err}); expected {_CIFAR_BATCH_FORMAT}"
        ) from err
    return _check_arrays(x, labels, _CIFAR_SHAPE, path, ("data", "labels"), _CIFAR_BATCH_FORMAT, where)


def load_cifar10(
    path: str | os.PathLike | None = None, split: str = "train", *, limit: int | None = None
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
    where = "load_cifar10"
    split, limit = _check_split(split, where), _check_limit(limit, where)
    if path is None:
        return _bundled(_BUNDLED_CIFAR10, "CIFAR-10", split, limit, where)
    path = _check_path(path, where)
    names = _CIFAR_BATCHES[split]
    expected = (
        f"a directory holding the CIFAR-10 python batches {', '.join(names)} (the {_CIFAR_SUBDIR} folder "
        f"from cifar-10-python.tar.gz) or the directory containing {_CIFAR_SUBDIR}"
    )
    if not path.is_dir():
        state = "is a file, not a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{where}: {path} {state}; expected {expected}")
    folder = next((d for d in (path, path / _CIFAR_SUBDIR) if all((d / n).is_file() for n in names)), None)
    if folder is None:
        missing = [n for n in names if not (path / n).is_file()]
        raise FileNotFoundError(
            f"{where}: {path} lacks {', '.join(missing)} (and has no complete {_CIFAR_SUBDIR} "
            f"folder); expected {expected}"
        )
    xs, ys, count = [], [], 0
    for name in names:
        x, y = _read_cifar_batch(folder / name, where)
        xs.append(x)
        ys.append(y)
        count += len(x)
        if limit is not None and count >= limit:
            break
    x = np.concatenate(xs, out=np.empty((count, *_CIFAR_SHAPE), np.uint8))  # one copy, C-contiguous HWC
    y = np.concatenate(ys)
    return _take(x, y, limit, str(folder), where)


# ----------------------------------------------------------------------------------------------------------------
# patterns and corruptions


def to_patterns(x: ArrayLike, *, scale: str = "unit") -> Array:
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
    where = "to_patterns"
    if not isinstance(scale, str) or scale not in PATTERN_SCALES:
        raise ValueError(f"{where}: scale must be one of {PATTERN_SCALES}, got {scale!r}")
    x = jnp.asarray(x)
    if x.dtype != jnp.uint8:
        raise TypeError(
            f"{where}: x must be uint8 images with values 0-255 (as returned by the loaders), got dtype "
            f"{x.dtype}; convert with x.astype(np.uint8) if they are pixel values"
        )
    if x.ndim < 2:
        raise ValueError(f"{where}: x must have shape (n, ...) with at least 2 dims, got shape {tuple(x.shape)}")
    flat = x.reshape(x.shape[0], -1).astype(jnp.float32)
    if scale == "unit":
        return flat / 255.0
    if scale == "bipolar":
        return (2.0 * flat - 255.0) / 255.0  # exact -1 and +1 at the ends
    centered = flat - jnp.mean(flat, axis=-1, keepdims=True)
    norm = jnp.linalg.norm(centered, axis=-1, keepdims=True)
    return centered / jnp.where(norm > 0, norm, 1.0)


def random_pixel_mask(key: PRNGKey, shape, visible_fraction: ArrayLike) -> Array:
    """Boolean masks with exactly ``k = round(visible_fraction * D)`` visible entries per pattern, placed uniformly.

    Each pattern's mask is a uniformly random permutation of ``k`` Trues and ``D - k`` Falses, drawn independently
    per pattern (``jax.random.permutation(..., independent=True)``), so the count is exact, unlike a Bernoulli mask.
    ``k`` is computed in float32 and rounds half to even. ``visible_fraction`` may be traced (a sweep does not
    re-trace); traced values outside [0, 1] clip to none / all visible. To hide whole pixels of a colour image
    flattened from (H, W, C), draw the mask for ``(..., H * W)`` and ``jnp.repeat(mask, C, axis=-1)``.

    Args:
      key: a ``jax.random`` key; the same key gives the same masks.
      shape: static mask shape ``(..., D)`` (a tuple of ints, or an int for one pattern).
      visible_fraction: scalar in [0, 1], the fraction of entries left visible.

    Returns:
      Mask of ``shape``, dtype bool, True = visible.

    Example:
      >>> random_pixel_mask(jax.random.key(0), (2, 784), 0.25).sum(-1).tolist()  # round(0.25 * 784) each
      [196, 196]
    """
    where = "random_pixel_mask"
    shape = _check_shape(shape, "shape", where)
    _check_fraction(visible_fraction, "visible_fraction", where)
    if jnp.ndim(visible_fraction) != 0:
        raise ValueError(f"{where}: visible_fraction must be a scalar, got shape {jnp.shape(visible_fraction)}")
    d = shape[-1]
    k = jnp.round(jnp.asarray(visible_fraction, jnp.float32) * d)
    base = jnp.broadcast_to(jnp.arange(d) < k, shape)
    return jax.random.permutation(key, base, axis=-1, independent=True)


def half_occlusion_mask(image_shape, which: str = "bottom") -> Array:
    """Flattened mask hiding one half of an image (rows for top / bottom, columns for left / right).

    The hidden half has ``H // 2`` rows (or ``W // 2`` columns), so with an odd size the middle line stays visible.
    Flattening is C order over (H, W[, C]), matching :func:`to_patterns`; all channels of a pixel share its value.

    Args:
      image_shape: static ``(H, W)`` or ``(H, W, C)``.
      which: the hidden half, one of ``OCCLUDED_HALVES`` (``"bottom"`` keeps the top half visible).

    Returns:
      Mask (D,) bool with ``D = H * W * C``, True = visible; broadcasts against patterns (..., D).

    Example:
      >>> int(half_occlusion_mask((28, 28), "bottom").sum())  # 14 rows of 28 visible
      392
    """
    where = "half_occlusion_mask"
    image_shape = _check_shape(image_shape, "image_shape", where)
    if len(image_shape) not in (2, 3) or min(image_shape) < 1:
        raise ValueError(f"{where}: image_shape must be (H, W) or (H, W, C) of positive ints, got {image_shape}")
    if not isinstance(which, str) or which not in OCCLUDED_HALVES:
        raise ValueError(f"{where}: which must be one of {OCCLUDED_HALVES}, got {which!r}")
    h, w = image_shape[:2]
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    hidden = {
        "bottom": rows >= h - h // 2,
        "top": rows < h // 2,
        "right": cols >= w - w // 2,
        "left": cols < w // 2,
    }[which]
    visible = np.broadcast_to(~hidden, (h, w))
    if len(image_shape) == 3:
        visible = np.broadcast_to(visible[:, :, None], image_shape)
    return jnp.asarray(visible.reshape(-1))


def occlude(x: ArrayLike, mask: ArrayLike, fill: ArrayLike = 0.0) -> Array:
    """Replace hidden entries by ``fill``: ``where(mask, x, fill)``.

    Args:
      x: patterns (..., D); integers become float32.
      mask: bool, broadcastable with ``x`` (e.g. (D,) for one mask, (..., D) per pattern); True = visible.
      fill: scalar written into the hidden entries (e.g. 0 for unit patterns, -1 or 0 for bipolar); may be traced.

    Returns:
      Occluded patterns with the broadcast shape of ``x`` and ``mask`` and the dtype of ``x``.

    Example:
      >>> occlude(jnp.ones(4), jnp.array([True, False, True, False]), fill=-1.0).tolist()
      [1.0, -1.0, 1.0, -1.0]
    """
    where = "occlude"
    x = check_floating(x, "x", where)
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"{where}: mask must be boolean (True = visible), got dtype {mask.dtype}")
    try:
        np.broadcast_shapes(x.shape, mask.shape)
    except ValueError as err:
        raise ValueError(
            f"{where}: mask shape {tuple(mask.shape)} does not broadcast with x shape {tuple(x.shape)}"
        ) from err
    if jnp.ndim(fill) != 0:
        raise ValueError(f"{where}: fill must be a scalar, got shape {jnp.shape(fill)}")
    return jnp.where(mask, x, jnp.asarray(fill, x.dtype))


def gaussian_noise(key: PRNGKey, x: ArrayLike, norm: ArrayLike) -> Array:
    """Add noise of L2 norm exactly ``norm`` to each pattern: ``x + norm * g / ||g||``, ``g ~ N(0, I_D)``.

    The direction ``g / ||g||`` is uniform on the unit sphere in D dimensions, independently per pattern. The noise
    is computed in float32 (or float64 for float64 ``x``); the result is cast back to the dtype of ``x``.

    Args:
      key: a ``jax.random`` key; the same key gives the same noise.
      x: patterns (..., D); integers become float32.
      norm: noise norm >= 0, a scalar or an array broadcastable to the leading shape ``x.shape[:-1]``; may be traced.

    Returns:
      Noisy patterns with the shape and dtype of ``x``.

    Example:
      >>> jnp.linalg.norm(gaussian_noise(jax.random.key(0), jnp.zeros((2, 8)), 3.0), axis=-1).round(4).tolist()
      [3.0, 3.0]
    """
    where = "gaussian_noise"
    x = check_floating(x, "x", where)
    if x.ndim < 1:
        raise ValueError(f"{where}: x must have shape (..., D), got a scalar")
    check_positive(norm, "norm", where, allow_zero=True)
    lead = x.shape[:-1]
    try:
        ok = np.broadcast_shapes(jnp.shape(norm), lead) == lead
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{where}: norm shape {jnp.shape(norm)} must broadcast to the leading shape {lead} of x "
            f"(shape {tuple(x.shape)})"
        )
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    g = jax.random.normal(key, x.shape, dtype)
    direction = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
    noise = jnp.asarray(norm, dtype)[..., None] * direction
    return (x.astype(dtype) + noise).astype(x.dtype)


def inverted_dropout(key: PRNGKey, x: ArrayLike, drop_fraction: ArrayLike) -> Array:
    """Inverted dropout: zero each entry with probability ``p``, scale the survivors by ``1 / (1 - p)``.

    This is the query corruption of the public U-Hop code (``torch.nn.functional.dropout`` semantics), a variant of
    plain masking: the number of dropped entries is Binomial(D, p) rather than exact, and survivors are rescaled so
    that the expected pattern is unchanged. For an exact count with unscaled survivors use :func:`random_pixel_mask`
    with :func:`occlude`. ``p = 1`` drops everything (zeros, as in torch).

    Args:
      key: a ``jax.random`` key; the same key gives the same mask.
      x: patterns (..., D); integers become float32.
      drop_fraction: probability ``p`` in [0, 1] of dropping each entry; may be traced.

    Returns:
      Corrupted patterns with the shape and dtype of ``x``.

    Example:
      >>> sorted(set(inverted_dropout(jax.random.key(0), jnp.ones(1000), 0.5).tolist()))  # dropped or doubled
      [0.0, 2.0]
    """
    where = "inverted_dropout"
    x = check_floating(x, "x", where)
    _check_fraction(drop_fraction, "drop_fraction", where)
    if jnp.ndim(drop_fraction) != 0:
        raise ValueError(f"{where}: drop_fraction must be a scalar, got shape {jnp.shape(drop_fraction)}")
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    keep_prob = 1.0 - jnp.asarray(drop_fraction, dtype)
    keep = jax.random.bernoulli(key, keep_prob, x.shape)
    scale = jnp.where(keep_prob > 0, 1.0 / jnp.where(keep_prob > 0, keep_prob, 1.0), 0.0)
    return jnp.where(keep, x.astype(dtype) * scale, 0.0).astype(x.dtype)
