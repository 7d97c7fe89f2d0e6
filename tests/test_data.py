"""Datasets: MNIST loading from IDX files the tests write, its errors, and the small datasets.

``load_mnist`` is exercised offline on tiny gzip IDX files written here (5 images of 28x28),
with ``checksums=`` set to their MD5s: the good path, a wrong MD5, truncated and non-gzip files,
missing folders and files, ``COURSE_DATA_DIR``, and a download that fails (``urlopen``
monkeypatched: no network is ever touched). The real t10k files are loaded when the shared
data folder is there (``$COURSE_DATA_DIR`` or ``../shared/data``), skipped otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from course_lib import data
from course_lib.data import (
    ChecksumError,
    CorruptFileError,
    DatasetError,
    DatasetNotFoundError,
    load_course_data,
    load_digits,
    load_mnist,
    make_xor,
    read_idx,
    train_test_split,
)

ROOT = Path(__file__).resolve().parents[1]
IMAGES, LABELS = (name for name, _ in data.MNIST_FILES["test"])
N_FAKE = 5


def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: 0, 0, 0x08, ndim, then each dimension as a big-endian uint32."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fake_arrays(n: int = N_FAKE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # the extremes of the range
    labels = np.arange(n, dtype=np.uint8) % 10
    return images, labels


def write_mnist(
    folder: Path, images: np.ndarray | None = None, labels: np.ndarray | None = None
) -> dict[str, str]:
    """Write the two t10k .gz files into ``folder``; returns their MD5s, for ``checksums=``."""
    if images is None:
        images, labels = fake_arrays()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / IMAGES).write_bytes(gzip.compress(idx_bytes(images)))
    (folder / LABELS).write_bytes(gzip.compress(idx_bytes(labels)))
    return {IMAGES: md5_of(folder / IMAGES), LABELS: md5_of(folder / LABELS)}


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No COURSE_DATA_DIR, an empty cache folder, and no network: a download fails at once."""
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls = []

    def offline(url, *args, **kwargs):
        calls.append((url, kwargs.get("timeout", args[1] if len(args) > 1 else None)))
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return calls


# ------------------------------------------------------------------------------- the good path


def test_load_mnist_from_a_folder(tmp_path, isolated):
    images, labels = fake_arrays()
    sums = write_mnist(tmp_path / "mn", images, labels)
    X, y = load_mnist("test", data_dir=tmp_path / "mn", download=False, checksums=sums)
    assert X.shape == (N_FAKE, 784) and X.dtype == np.float32
    assert y.shape == (N_FAKE,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert_allclose(X * 255, images.reshape(N_FAKE, -1), rtol=0, atol=1e-4)
    assert_array_equal(y, labels)
    assert isolated == [], "nothing is downloaded when the files are there"


def test_data_dir_may_hold_a_mnist_subfolder(tmp_path, isolated):
    sums = write_mnist(tmp_path / "root" / "mnist")
    X, _ = load_mnist(data_dir=tmp_path / "root", download=False, checksums=sums)
    assert X.shape == (N_FAKE, 784)


@pytest.mark.parametrize("sub", ["mnist", ""])
def test_course_data_dir_is_searched(tmp_path, monkeypatch, isolated, sub):
    sums = write_mnist(tmp_path / "shared" / sub)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "shared"))
    X, y = load_mnist("test", download=False, checksums=sums)
    assert X.shape == (N_FAKE, 784) and y.shape == (N_FAKE,)


def test_cache_folder_is_searched(tmp_path, isolated):
    sums = write_mnist(tmp_path / "cache" / "course_lib" / "mnist")
    assert data.cache_dir() == tmp_path / "cache" / "course_lib" / "mnist"
    X, _ = load_mnist(download=False, checksums=sums)
    assert X.shape == (N_FAKE, 784)


def test_read_idx_uncompressed(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(arr))
    out = read_idx(tmp_path / "a-idx3-ubyte")
    assert out.dtype == np.uint8
    assert_array_equal(out, arr)


# ------------------------------------------------------------------------------------- errors


def test_wrong_md5_is_a_checksum_error(tmp_path, isolated):
    write_mnist(tmp_path)
    with pytest.raises(ChecksumError) as e:
        load_mnist(data_dir=tmp_path, download=False)  # the published MD5s: our files differ
    msg = str(e.value)
    assert str(tmp_path / IMAGES) in msg
    assert "expected 9fb629c4189551a2d022fa330f9573f3" in msg
    assert "delete it and fetch it again" in msg
    assert isinstance(e.value, ValueError) and isinstance(e.value, DatasetError)


def test_truncated_idx_is_corrupt(tmp_path, isolated):
    """A valid gzip of an IDX file cut short: the checksum matches (it is what we wrote), the
    IDX size check catches it."""
    images, labels = fake_arrays()
    sums = write_mnist(tmp_path, images, labels)
    (tmp_path / IMAGES).write_bytes(gzip.compress(idx_bytes(images)[:-100]))
    sums[IMAGES] = md5_of(tmp_path / IMAGES)
    with pytest.raises(CorruptFileError, match=r"truncated.*shape \(5, 28, 28\)") as e:
        load_mnist(data_dir=tmp_path, download=False, checksums=sums)
    assert str(tmp_path / IMAGES) in str(e.value)


def test_truncated_gzip_is_corrupt(tmp_path, isolated):
    """The .gz file itself cut short (an interrupted download), with a matching checksum."""
    sums = write_mnist(tmp_path)
    raw = (tmp_path / IMAGES).read_bytes()
    (tmp_path / IMAGES).write_bytes(raw[: len(raw) // 2])
    sums[IMAGES] = md5_of(tmp_path / IMAGES)
    with pytest.raises(CorruptFileError, match="truncated") as e:
        load_mnist(data_dir=tmp_path, download=False, checksums=sums)
    assert str(tmp_path / IMAGES) in str(e.value)
    assert "fetch it again" in str(e.value)


@pytest.mark.parametrize(
    "garbage",
    [b"this is not a gzip file at all" * 10, b"\x1f\x8b\x08\x00" + b"\xff" * 64],
    ids=["no-gzip-magic", "gzip-magic-then-garbage"],
)
def test_garbage_is_corrupt(tmp_path, isolated, garbage):
    sums = write_mnist(tmp_path)
    (tmp_path / IMAGES).write_bytes(garbage)
    sums[IMAGES] = md5_of(tmp_path / IMAGES)
    with pytest.raises(CorruptFileError, match="not a readable gzip file"):
        load_mnist(data_dir=tmp_path, download=False, checksums=sums)


def test_bad_idx_magic_is_corrupt(tmp_path, isolated):
    sums = write_mnist(tmp_path)
    raw = bytearray(idx_bytes(fake_arrays()[0]))
    raw[2] = 0x0D  # float32 IDX: not what MNIST holds
    (tmp_path / IMAGES).write_bytes(gzip.compress(bytes(raw)))
    sums[IMAGES] = md5_of(tmp_path / IMAGES)
    with pytest.raises(CorruptFileError, match="bad magic number"):
        load_mnist(data_dir=tmp_path, download=False, checksums=sums)


def test_images_and_labels_must_agree(tmp_path, isolated):
    images, labels = fake_arrays()
    sums = write_mnist(tmp_path, images, labels[:3])
    with pytest.raises(CorruptFileError, match=r"\(5, 28, 28\) images but .* \(3,\) labels"):
        load_mnist(data_dir=tmp_path, download=False, checksums=sums)


def test_missing_folder_names_it(tmp_path, isolated):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match="does not exist") as e:
        load_mnist(data_dir=missing)
    assert str(missing) in str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert isolated == [], "no download is tried for a folder that does not exist"


def test_absent_files_without_download_list_the_folders(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "shared"))
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist(download=False)
    msg = str(e.value)
    for folder in (tmp_path / "shared" / "mnist", tmp_path / "shared", data.cache_dir()):
        assert str(folder) in msg
    assert IMAGES in msg and "COURSE_DATA_DIR" in msg
    assert isolated == []
    # with data_dir: the folder and its mnist/ subfolder
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist(data_dir=tmp_path / "empty", download=False)
    assert str(tmp_path / "empty") in str(e.value) and str(tmp_path / "empty" / "mnist") in str(e.value)


def test_offline_download_fails_fast_with_both_reasons(tmp_path, isolated):
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist(download=True)
    msg = str(e.value).lower()
    assert "not found" in msg and "download failed" in msg
    assert "network is unreachable" in msg
    assert [url for url, _ in isolated] == [m + IMAGES for m in data.MNIST_MIRRORS]
    # every attempt has a finite timeout, so a dead network cannot hang the call
    assert all(t is not None and 0 < t <= 60 for _, t in isolated)
    assert not list(data.cache_dir().glob("*.part")), "no partial file is left behind"


def test_download_writes_checked_files_to_the_cache(tmp_path, monkeypatch, isolated):
    """A download that works (urlopen serves bytes from memory) lands in the cache folder."""
    images, labels = fake_arrays()
    payload = {IMAGES: gzip.compress(idx_bytes(images)), LABELS: gzip.compress(idx_bytes(labels))}
    sums = {k: hashlib.md5(v).hexdigest() for k, v in payload.items()}
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(payload[url.rsplit("/", 1)[1]])
    )
    X, y = load_mnist(download=True, checksums=sums)
    assert X.shape == (N_FAKE, 784)
    assert_array_equal(y, labels)
    assert sorted(p.name for p in data.cache_dir().iterdir()) == sorted(payload)
    # a mirror serving a different file: rejected by MD5, never saved
    for p in data.cache_dir().iterdir():
        p.unlink()
    bad = dict(sums, **{IMAGES: "0" * 32})
    with pytest.raises(DatasetNotFoundError, match="wrong MD5"):
        load_mnist(download=True, checksums=bad)
    assert not (data.cache_dir() / IMAGES).exists()


def test_bad_subset(isolated):
    with pytest.raises(ValueError, match="subset must be one of"):
        load_mnist("validation")


# ------------------------------------------------------------------------------ the real files


def shared_data_root() -> Path:
    return Path(os.environ.get("COURSE_DATA_DIR") or ROOT.parent / "shared" / "data")


@pytest.fixture
def real_mnist() -> Path:
    root = shared_data_root()
    if not (root / "mnist" / IMAGES).is_file():
        pytest.skip(f"no MNIST t10k files under {root / 'mnist'} (set COURSE_DATA_DIR)")
    return root


def test_real_t10k_loads(real_mnist):
    X, y = load_mnist("test", data_dir=real_mnist / "mnist", download=False)
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert 0.0 <= X.min() and X.max() <= 1.0 and X.max() == 1.0
    assert y.shape == (10000,) and y.dtype == np.int64
    assert_array_equal(np.unique(y), np.arange(10))
    assert_allclose(np.bincount(y) / len(y), 0.1, atol=0.02)  # roughly balanced


def test_course_data_is_mnist_10k_when_there(real_mnist, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(real_mnist))
    d = load_course_data()
    assert (d.name, d.fallback) == ("MNIST-10k", False)
    assert d.X_train.shape == (8000, 784) and d.X_test.shape == (2000, 784)
    assert d.n_features == 784 and d.n_classes == 10
    assert "MNIST-10k" in d.note


# ------------------------------------------------------------------------ the small datasets


def test_course_data_falls_back_to_digits(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    d = load_course_data()
    assert (d.name, d.fallback) == ("digits", True)
    assert "MNIST is not available" in d.note and "COURSE_DATA_DIR" in d.note
    assert d.X_train.shape == (1438, 64) and d.X_test.shape == (359, 64)
    assert d.n_features == 64 and d.n_classes == 10
    assert isolated == [], "load_course_data never downloads"


def test_load_digits():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert_array_equal(np.unique(y), np.arange(10))


def test_bundled_digits_are_scikit_learns_and_need_no_scikit_learn():
    """The file course_lib ships is the data set scikit-learn's load_digits returns, and reading
    it imports neither scikit-learn nor scipy (a student's install has neither)."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits as sklearn_digits

    X, y = load_digits()
    ref = sklearn_digits()
    assert_array_equal(X, (ref.data / 16.0).astype(np.float32))
    assert_array_equal(y, ref.target)
    code = (
        "import sys; from course_lib.data import load_digits; X, y = load_digits(); "
        "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


@pytest.mark.parametrize("n", [1, 50])
def test_make_xor(n):
    X, y = make_xor(n_per_corner=n, noise=0.05, rng=0)
    assert X.shape == (4 * n, 2) and y.shape == (4 * n,)
    assert y.dtype == np.int64 and X.dtype == np.float64
    assert_array_equal(np.bincount(y), [2 * n, 2 * n])
    corner = np.round(X).astype(int)  # noise 0.05: every point is nearest its own corner
    assert_array_equal(y, corner[:, 0] ^ corner[:, 1])
    X2, y2 = make_xor(n_per_corner=n, noise=0.05, rng=0)
    assert_array_equal(X, X2)
    assert not np.array_equal(X, make_xor(n_per_corner=n, noise=0.05, rng=1)[0])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300), data_=st.data())
def test_train_test_split_partitions(n, data_):
    test_size = data_.draw(st.one_of(st.integers(1, n - 1), st.floats(0.5 / n + 1e-9, 1 - 0.5 / n - 1e-9)))
    X = np.arange(n)[:, None] * np.ones((1, 3))  # row i holds i: rows identify themselves
    y = np.arange(n)
    n_test = int(round(test_size * n)) if isinstance(test_size, float) else test_size
    if not 0 < n_test < n:
        return  # rounding left an empty side: covered by the error test
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size, seed=3)
    assert len(Xte) == len(yte) == n_test and len(Xtr) == len(ytr) == n - n_test
    assert_array_equal(Xtr[:, 0], ytr)  # rows and labels stay paired
    assert_array_equal(Xte[:, 0], yte)
    assert not set(ytr) & set(yte)
    assert_array_equal(np.sort(np.concatenate([ytr, yte])), np.arange(n))


def test_train_test_split_seeds():
    X, y = np.arange(100.0)[:, None], np.arange(100)
    a, b, c = (train_test_split(X, y, 0.25, seed=s) for s in (7, 7, 8))
    for u, v in zip(a, b, strict=True):
        assert_array_equal(u, v)
    assert not np.array_equal(a[3], c[3])
    assert len(a[1]) == 25


@pytest.mark.parametrize("test_size", [0, 10, 0.0, 1.0, 0.01])
def test_train_test_split_errors(test_size):
    X, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="leaves"):
        train_test_split(X, y, test_size)
    with pytest.raises(ValueError, match="X has 10 rows but y has 9"):
        train_test_split(X, y[:9])
