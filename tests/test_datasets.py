"""Tests for dammem.datasets: bundled data, loaders on synthetic files in every standard format, patterns."""

from __future__ import annotations

import gzip
import pathlib
import pickle
import struct

import jax.numpy as jnp
import numpy as np
import pytest

from dammem import datasets
from dammem.datasets import BUNDLED_COUNTS, load_cifar10, load_mnist, to_patterns

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def _images(rng, n, shape):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _labels(rng, n):
    return rng.integers(0, 10, size=n, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# bundled data


def test_bundled_shapes_and_dtypes():
    x, y = load_mnist()
    assert x.shape == (2000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (2000,) and y.dtype == np.uint8 and y.max() <= 9
    x, y = load_cifar10()
    assert x.shape == (500, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (500,) and y.dtype == np.uint8 and y.max() <= 9
    assert BUNDLED_COUNTS == {"mnist": 2000, "cifar10": 500}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the project's shared data folder is not present")
@pytest.mark.parametrize("loader, source", [(load_mnist, "mnist_test_2k.npz"), (load_cifar10, "cifar10_train_2k.npz")])
def test_bundled_equals_first_images_of_shared_data(loader, source):
    x, y = loader()
    with np.load(SHARED_DATA / source) as ref:
        np.testing.assert_array_equal(x, ref["x"][: len(x)])
        np.testing.assert_array_equal(y, ref["y"][: len(y)])


def test_bundled_limit_returns_a_prefix_copy():
    x_all, y_all = load_mnist()
    x, y = load_mnist(limit=7)
    np.testing.assert_array_equal(x, x_all[:7])
    np.testing.assert_array_equal(y, y_all[:7])
    assert x.base is None  # not a view pinning the full array


@pytest.mark.parametrize("loader, other", [(load_mnist, "train"), (load_cifar10, "test")])
def test_bundled_other_split_is_refused(loader, other):
    with pytest.raises(ValueError, match="bundled.*pass path="):
        loader(split=other)


@pytest.mark.parametrize("loader", [load_mnist, load_cifar10])
def test_bad_split_and_limit(loader):
    with pytest.raises(ValueError, match="split must be one of"):
        loader(split="validation")
    with pytest.raises(ValueError, match="limit"):
        loader(limit=0)
    with pytest.raises(ValueError, match="limit"):
        loader(limit=-3)
    with pytest.raises(TypeError, match="limit"):
        loader(limit=2.5)
    with pytest.raises(TypeError, match="limit"):
        loader(limit=True)
    with pytest.raises(ValueError, match="exceeds"):
        loader(limit=100_000)
    with pytest.raises(TypeError, match="path"):
        loader(path=3)


# ---------------------------------------------------------------------------------------------------------------
# MNIST from files


def _write_mnist_npz(path, rng, n_train=6, n_test=4, **overrides):
    arrays = {
        "x_train": _images(rng, n_train, (28, 28)),
        "y_train": _labels(rng, n_train),
        "x_test": _images(rng, n_test, (28, 28)),
        "y_test": _labels(rng, n_test),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez_compressed(path, **arrays)
    return arrays


def _idx_bytes(array, magic):
    return struct.pack(">i", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_mnist_idx(folder, rng, n_train=5, n_test=3, compress=True):
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = datasets._MNIST_IDX[split]
        x, y = _images(rng, n, (28, 28)), _labels(rng, n)
        for name, array, magic in ((images_name, x, 2051), (labels_name, y, 2049)):
            raw = _idx_bytes(array, magic)
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
        written[split] = (x, y)
    return written


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_npz_round_trip(tmp_path, split):
    arrays = _write_mnist_npz(tmp_path / "mnist.npz", np.random.default_rng(0))
    for path in (tmp_path / "mnist.npz", str(tmp_path / "mnist.npz"), tmp_path):  # file, str, or its directory
        x, y = load_mnist(path, split)
        np.testing.assert_array_equal(x, arrays[f"x_{split}"])
        np.testing.assert_array_equal(y, arrays[f"y_{split}"])
        assert x.dtype == np.uint8 and y.dtype == np.uint8
    x, y = load_mnist(tmp_path / "mnist.npz", split, limit=2)
    np.testing.assert_array_equal(x, arrays[f"x_{split}"][:2])


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_idx_round_trip(tmp_path, split, compress):
    written = _write_mnist_idx(tmp_path, np.random.default_rng(1), compress=compress)
    x, y = load_mnist(tmp_path, split)
    np.testing.assert_array_equal(x, written[split][0])
    np.testing.assert_array_equal(y, written[split][1])
    assert x.shape[1:] == (28, 28) and x.dtype == np.uint8 and y.dtype == np.uint8
    x, y = load_mnist(tmp_path, split, limit=2)
    np.testing.assert_array_equal(x, written[split][0][:2])
    with pytest.raises(ValueError, match="exceeds"):
        load_mnist(tmp_path, split, limit=50)


def test_mnist_missing_paths(tmp_path):
    missing = tmp_path / "nowhere" / "mnist.npz"
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(missing)
    assert str(missing) in str(info.value) and "x_train" in str(info.value) and "idx" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:  # an empty directory
        load_mnist(tmp_path)
    assert str(tmp_path) in str(info.value) and "t10k-images-idx3-ubyte.gz" in str(info.value)
    _write_mnist_idx(tmp_path, np.random.default_rng(2))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path, "test")


def _assert_value_error_names(path, call, *fragments):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_mnist_npz_malformed(tmp_path):
    rng = np.random.default_rng(3)
    bad = tmp_path / "text.npz"
    bad.write_text("not an archive")
    _assert_value_error_names(bad, lambda: load_mnist(bad), "x_train")
    zipped = tmp_path / "broken.npz"
    zipped.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    _assert_value_error_names(zipped, lambda: load_mnist(zipped), "x_train")
    good = tmp_path / "good.npz"
    _write_mnist_npz(good, rng)
    raw = bytearray(good.read_bytes())
    raw[200:260] = bytes(60)  # damage the deflate stream of the first member
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(bytes(raw))
    _assert_value_error_names(corrupt, lambda: load_mnist(corrupt, "train"), "x_train")
    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros(3))
    _assert_value_error_names(npy, lambda: load_mnist(npy), "single .npy")
    cases = {
        "nokeys.npz": dict(x_test=None, y_test=None),
        "dtype.npz": dict(x_test=np.zeros((4, 28, 28), np.float32)),
        "shape.npz": dict(x_test=np.zeros((4, 28, 27), np.uint8)),
        "count.npz": dict(y_test=np.zeros(3, np.uint8)),
        "range.npz": dict(y_test=np.full(4, 10, np.uint8)),
        "float_labels.npz": dict(y_test=np.zeros(4, np.float64)),
    }
    for name, override in cases.items():
        _write_mnist_npz(tmp_path / name, rng, **override)
        _assert_value_error_names(tmp_path / name, lambda path=tmp_path / name: load_mnist(path, "test"), "expected")
    with pytest.raises(ValueError, match="lacks the keys"):
        load_mnist(tmp_path / "nokeys.npz", "test")


def _rewrite(path, raw):
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def test_mnist_idx_malformed(tmp_path):
    rng = np.random.default_rng(4)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    good_x, good_y = _images(rng, 3, (28, 28)), _labels(rng, 3)

    def reset():
        _rewrite(images, _idx_bytes(good_x, 2051))
        _rewrite(labels, _idx_bytes(good_y, 2049))

    reset()
    load_mnist(tmp_path)  # the good files load
    bad_images = {
        "magic number 2049": _idx_bytes(good_x, 2049),
        "declares sizes": _idx_bytes(_images(rng, 3, (28, 27)), 2051),
        "data bytes": _idx_bytes(good_x, 2051)[:-5],
        "too short": b"\x00\x00",
    }
    for fragment, raw in bad_images.items():
        reset()
        _rewrite(images, raw)
        _assert_value_error_names(images, lambda: load_mnist(tmp_path), fragment, "2051")
    reset()
    _rewrite(labels, _idx_bytes(good_y, 2051))
    _assert_value_error_names(labels, lambda: load_mnist(tmp_path), "magic number 2051", "2049")
    reset()
    _rewrite(labels, _idx_bytes(np.zeros(4, np.uint8), 2049))
    _assert_value_error_names(labels, lambda: load_mnist(tmp_path), "one label per image")
    reset()
    _rewrite(labels, _idx_bytes(np.full(3, 12, np.uint8), 2049))
    _assert_value_error_names(tmp_path, lambda: load_mnist(tmp_path), "0-9")
    reset()
    images.write_bytes(b"this is not gzip data at all")
    _assert_value_error_names(images, lambda: load_mnist(tmp_path), "gzip")


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10 from files


def _chw_rows(images_hwc):
    return images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), -1)


def _write_cifar(folder, rng, sizes=(3, 2, 4, 1, 2), n_test=3, protocol=pickle.HIGHEST_PROTOCOL):
    folder.mkdir(parents=True, exist_ok=True)
    written = {"train": [], "test": []}
    names = [(f"data_batch_{i + 1}", "train", n) for i, n in enumerate(sizes)] + [("test_batch", "test", n_test)]
    for name, split, n in names:
        x, y = _images(rng, n, (32, 32, 3)), _labels(rng, n)
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in y],
            b"data": _chw_rows(x),
            b"filenames": [b"img.png"] * n,
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[split].append((x, y))
    return {s: (np.concatenate([b[0] for b in v]), np.concatenate([b[1] for b in v])) for s, v in written.items()}


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_round_trip(tmp_path, split, protocol):
    written = _write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(5), protocol=protocol)
    for path in (tmp_path, tmp_path / "cifar-10-batches-py", str(tmp_path)):
        x, y = load_cifar10(path, split)
        np.testing.assert_array_equal(x, written[split][0])
        np.testing.assert_array_equal(y, written[split][1])
        assert x.dtype == np.uint8 and y.dtype == np.uint8 and x.flags.c_contiguous


def test_cifar_chw_to_hwc_layout(tmp_path):
    rng = np.random.default_rng(6)
    _write_cifar(tmp_path, rng)
    data = pickle.loads((tmp_path / "data_batch_1").read_bytes())[b"data"]
    x, _ = load_cifar10(tmp_path, limit=1)
    for h, w, c in [(0, 0, 0), (0, 1, 0), (1, 0, 0), (5, 7, 2), (31, 30, 1)]:
        assert x[0, h, w, c] == data[0, c * 1024 + h * 32 + w]


def test_cifar_limit_reads_only_needed_batches(tmp_path):
    written = _write_cifar(tmp_path, np.random.default_rng(7), sizes=(3, 2, 4, 1, 2))
    (tmp_path / "data_batch_4").write_bytes(b"corrupt")  # never opened for limit <= 9
    x, y = load_cifar10(tmp_path, limit=6)
    np.testing.assert_array_equal(x, written["train"][0][:6])
    np.testing.assert_array_equal(y, written["train"][1][:6])
    _assert_value_error_names(tmp_path / "data_batch_4", lambda: load_cifar10(tmp_path, limit=10), "pickle")


def _py2_style_batch(data, labels):
    """A batch pickled the way the official (Python 2 cPickle, protocol 2) CIFAR files are: byte strings, numpy.core."""

    def string(b):
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)

    def glob(module, name):
        return b"c" + module + b"\n" + name + b"\n"

    def int_(v):
        return b"J" + struct.pack("<i", v)

    dtype = (
        glob(b"numpy", b"dtype")
        + string(b"u1")
        + int_(0)
        + int_(1)
        + b"\x87R"
        + b"("
        + int_(3)
        + string(b"|")
        + b"NNN"
        + int_(-1)
        + int_(-1)
        + int_(0)
        + b"tb"
    )
    array = (
        glob(b"numpy.core.multiarray", b"_reconstruct")
        + glob(b"numpy", b"ndarray")
        + int_(0)
        + b"\x85"
        + string(b"b")
        + b"\x87R"
        + b"("
        + int_(1)
        + int_(data.shape[0])
        + int_(data.shape[1])
        + b"\x86"
        + dtype
        + b"\x89"
        + string(data.tobytes())
        + b"tb"
    )
    label_list = b"](" + b"".join(int_(int(v)) for v in labels) + b"e"
    return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + label_list + b"u."


def test_cifar_python2_style_pickle(tmp_path):
    rng = np.random.default_rng(8)
    x_ref, y_ref = _images(rng, 3, (32, 32, 3)), _labels(rng, 3)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (tmp_path / name).write_bytes(_py2_style_batch(_chw_rows(x_ref), y_ref))
    x, y = load_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_cifar_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value) and "data_batch_1" in str(info.value)
    _write_cifar(tmp_path, np.random.default_rng(9))
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path)
    assert str(tmp_path) in str(info.value) and "data_batch_3" in str(info.value)
    load_cifar10(tmp_path, "test")  # the test split is complete
    with pytest.raises(FileNotFoundError, match="is a file"):
        load_cifar10(tmp_path / "test_batch")


def test_cifar_malformed(tmp_path):
    import datetime

    rng = np.random.default_rng(10)
    _write_cifar(tmp_path, rng)
    batch = tmp_path / "test_batch"
    good = pickle.loads(batch.read_bytes())
    cases = {
        "not a readable pickle": b"definitely not a pickle",
        "not a dict": pickle.dumps([1, 2, 3]),
        "no 'labels' entry": pickle.dumps({b"data": good[b"data"]}),
        "(n, 3072)": pickle.dumps({b"data": good[b"data"][:, :100], b"labels": good[b"labels"]}),
        "uint8": pickle.dumps({b"data": good[b"data"].astype(np.int64), b"labels": good[b"labels"]}),
        "one per image": pickle.dumps({b"data": good[b"data"], b"labels": good[b"labels"][:-1]}),
        "0-9": pickle.dumps({b"data": good[b"data"], b"labels": [11] * len(good[b"labels"])}),
        "refusing to load the global datetime": pickle.dumps({b"data": datetime.date(2000, 1, 1)}),
    }
    for fragment, raw in cases.items():
        batch.write_bytes(raw)
        _assert_value_error_names(batch, lambda: load_cifar10(tmp_path, "test"), fragment, "b'data'")


def test_cifar_accepts_str_keys(tmp_path):
    rng = np.random.default_rng(11)
    _write_cifar(tmp_path, rng)
    x_ref, y_ref = _images(rng, 2, (32, 32, 3)), _labels(rng, 2)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": _chw_rows(x_ref), "labels": y_ref.tolist()}))
    x, y = load_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)


# ---------------------------------------------------------------------------------------------------------------
# patterns


def test_to_patterns_scales():
    x = np.array([[[0, 51], [102, 255]], [[7, 7], [7, 7]]], np.uint8)
    unit = to_patterns(x)
    assert unit.shape == (2, 4) and unit.dtype == jnp.float32
    np.testing.assert_allclose(unit, x.reshape(2, 4) / 255.0, rtol=1e-6)
    bipolar = to_patterns(x, scale="bipolar")
    np.testing.assert_allclose(bipolar, 2 * x.reshape(2, 4).astype(np.float64) / 255.0 - 1, rtol=1e-6, atol=1e-7)
    assert bipolar[0, 0] == -1.0 and bipolar[0, 3] == 1.0
    centered = np.asarray(to_patterns(x, scale="centered"), np.float64)
    ref = x[0].reshape(-1).astype(np.float64)
    ref = (ref - ref.mean()) / np.linalg.norm(ref - ref.mean())
    np.testing.assert_allclose(centered[0], ref, rtol=1e-6)
    np.testing.assert_array_equal(centered[1], 0.0)  # constant image


def test_to_patterns_flattens_hwc_in_c_order():
    x, _ = load_cifar10(limit=2)
    np.testing.assert_allclose(to_patterns(x), x.reshape(2, -1) / 255.0, rtol=1e-6)


def test_to_patterns_errors():
    with pytest.raises(ValueError, match="scale must be one of"):
        to_patterns(np.zeros((2, 3), np.uint8), scale="zscore")
    with pytest.raises(TypeError, match="uint8"):
        to_patterns(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="at least 2 dims"):
        to_patterns(np.zeros(3, np.uint8))


# ---------------------------------------------------------------------------------------------------------------
# truncated files (an interrupted download or copy): the message names the file and calls it damaged


def _cut(path: pathlib.Path, keep: float) -> pathlib.Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_mnist_files_are_called_damaged(tmp_path, keep):
    rng = np.random.default_rng(8)
    _write_mnist_npz(tmp_path / "mnist.npz", rng)
    npz = _cut(tmp_path / "mnist.npz", keep)
    _assert_value_error_names(npz, lambda: load_mnist(npz, "test"), "is damaged")
    for compress in (True, False):
        folder = tmp_path / f"idx_{compress}"
        folder.mkdir()
        _write_mnist_idx(folder, rng, compress=compress)
        name = datasets._MNIST_IDX["test"][0] + (".gz" if compress else "")
        images = _cut(folder / name, keep)
        _assert_value_error_names(images, lambda folder=folder: load_mnist(folder, "test"), "is damaged")


def test_truncated_cifar_batch_is_called_damaged(tmp_path):
    _write_cifar(tmp_path, np.random.default_rng(9))
    batch = _cut(tmp_path / "test_batch", 0.5)
    _assert_value_error_names(batch, lambda: load_cifar10(tmp_path, "test"), "is damaged")


@pytest.mark.parametrize(("loader", "resource"), [(load_mnist, "mnist_test_first2000.npz")])
def test_truncated_bundled_file_is_called_damaged(tmp_path, monkeypatch, loader, resource):
    (tmp_path / "data").mkdir()
    packaged = pathlib.Path(datasets.__file__).parent / "data" / resource
    (tmp_path / "data" / resource).write_bytes(packaged.read_bytes()[: packaged.stat().st_size // 2])
    monkeypatch.setattr(datasets.importlib.resources, "files", lambda package: tmp_path)
    _assert_value_error_names(tmp_path / "data" / resource, loader, "is damaged", "reinstall dammem")


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10 .npz archives (the bundled subset's format)


def test_cifar_archive_round_trip_and_limit(tmp_path):
    rng = np.random.default_rng(11)
    x, y = _images(rng, 7, (32, 32, 3)), _labels(rng, 7)
    np.savez(tmp_path / "part.npz", x=x, y=y.astype(np.int64))
    got_x, got_y = datasets.load_cifar10_archive(tmp_path / "part.npz")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    assert got_y.dtype == np.uint8
    got_x, got_y = datasets.load_cifar10_archive(str(tmp_path / "part.npz"), limit=3)
    np.testing.assert_array_equal(got_x, x[:3])
    np.testing.assert_array_equal(got_y, y[:3])
    with pytest.raises(ValueError, match="limit=8 exceeds the 7 images"):
        datasets.load_cifar10_archive(tmp_path / "part.npz", limit=8)


def test_cifar_archive_matches_the_python_batches(tmp_path):
    """The same images through both loaders: the archive of the first batch's images equals load_cifar10's."""
    _write_cifar(tmp_path, np.random.default_rng(12))
    x, y = load_cifar10(tmp_path, limit=3)
    np.savez(tmp_path / "first.npz", x=x, y=y)
    got_x, got_y = datasets.load_cifar10_archive(tmp_path / "first.npz")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)


def test_cifar_archive_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; expected a .npz archive with arrays x"):
        datasets.load_cifar10_archive(tmp_path / "absent.npz")
    with pytest.raises(FileNotFoundError, match="is a directory, not a file"):
        datasets.load_cifar10_archive(tmp_path)
    rng = np.random.default_rng(13)
    np.savez(tmp_path / "nokeys.npz", images=_images(rng, 2, (32, 32, 3)))
    _assert_value_error_names(tmp_path / "nokeys.npz", lambda: datasets.load_cifar10_archive(tmp_path / "nokeys.npz"),
                              "lacks the keys ['x', 'y']")  # fmt: skip
    np.savez(tmp_path / "gray.npz", x=_images(rng, 2, (28, 28)), y=_labels(rng, 2))
    _assert_value_error_names(tmp_path / "gray.npz", lambda: datasets.load_cifar10_archive(tmp_path / "gray.npz"),
                              "x must be uint8 of shape (n, 32, 32, 3)")  # fmt: skip
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 not really")
    _assert_value_error_names(tmp_path / "cut.npz", lambda: datasets.load_cifar10_archive(tmp_path / "cut.npz"),
                              "not a readable archive")  # fmt: skip


@pytest.mark.skipif(not (SHARED_DATA / "cifar10_test_first1000.npz").exists(), reason="the shared data are absent")
def test_cifar_archive_reads_the_shared_test_subset():
    x, y = datasets.load_cifar10_archive(SHARED_DATA / "cifar10_test_first1000.npz", limit=5)
    assert x.shape == (5, 32, 32, 3) and y.shape == (5,) and y.max() <= 9
