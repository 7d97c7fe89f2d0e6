"""Datasets: the bundled 8x8 digits, MNIST from IDX files, XOR, and a seeded train/test split.

``load_mnist`` looks in ``data_dir`` (if given), else ``$COURSE_DATA_DIR/mnist``,
``$COURSE_DATA_DIR`` and the cache folder (``$XDG_CACHE_HOME/course_lib/mnist``, default
``~/.cache/course_lib/mnist``); if the files are in none of them it downloads them into the
cache, checking every file's MD5. Offline, it fails with an error that says where to put them.
``load_course_data`` gives the "MNIST-10k" split the chapters use (8000 train / 2000 test from
the 10,000 t10k digits) and falls back, visibly, to the bundled digits when MNIST is missing.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

#: subset -> ((images file, MD5), (labels file, MD5)); the MD5s of the original LeCun files.
MNIST_FILES = {
    "train": (
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ),
    "test": (
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
}
#: Mirrors tried in order (the original host no longer serves the files reliably).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


class DatasetError(RuntimeError):
    """A dataset could not be loaded; the message says why and how to fix it."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The files are in none of the places searched, and could not be downloaded."""


class ChecksumError(DatasetError, ValueError):
    """A file's MD5 differs from the published one: a wrong, partial or altered download."""


class CorruptFileError(DatasetError, ValueError):
    """A file is not a valid IDX file (bad header, truncated, not gzip)."""


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_idx(path: str | Path) -> NDArray[np.uint8]:
    """Read an IDX file (gzip-compressed when the name ends in .gz) into a uint8 array.

    Header: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, then one
    big-endian uint32 per dimension. Raises ``CorruptFileError`` on anything else.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except EOFError as e:  # the gzip stream stops before its end marker: a cut-off download
        raise CorruptFileError(
            f"{path} is truncated: the gzip data ends early ({e}); delete it and fetch it again"
        ) from e
    except (OSError, zlib.error) as e:  # BadGzipFile is an OSError; zlib.error: damaged data
        raise CorruptFileError(
            f"{path} is not a readable gzip file ({e}); delete it and fetch it again"
        ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptFileError(f"{path} is not an IDX file of unsigned bytes (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptFileError(f"{path} is truncated: its header is incomplete")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise CorruptFileError(
            f"{path} is truncated or padded: the header promises shape {shape} ({expected} bytes) "
            f"but the file holds {len(raw)} bytes; delete it and fetch it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "course_lib" / "mnist"


def _search_dirs(data_dir: str | Path | None) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir), Path(data_dir) / "mnist"]
    dirs = []
    if os.environ.get("COURSE_DATA_DIR"):
        root = Path(os.environ["COURSE_DATA_DIR"])
        dirs += [root / "mnist", root]
    return dirs + [cache_dir()]


def _download(name: str, dest: Path, expected_md5: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in MNIST_MIRRORS:
        fd, tmp = tempfile.mkstemp(dir=dest, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(mirror + name, timeout=30) as r:
                out.write(r.read())
            if md5(Path(tmp)) != expected_md5:
                raise ChecksumError(f"{mirror + name} gave a file with the wrong MD5")
            os.replace(tmp, dest / name)  # atomic: never a half-written file under the real name
            return
        except Exception as e:  # noqa: BLE001 - every mirror failure is reported together
            errors.append(f"{mirror}: {e}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DatasetNotFoundError("could not download " + name + ":\n  " + "\n  ".join(errors))


def load_mnist(
    subset: str = "test",
    data_dir: str | Path | None = None,
    download: bool = True,
    checksums: dict[str, str] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """MNIST digits as X (N, 784) float32 in [0, 1] and y (N,) int64.

    ``subset="test"`` is the 10,000 t10k digits (the "MNIST-10k" of the chapters), ``"train"``
    the 60,000 training digits. ``checksums`` maps file names to MD5s, overriding the
    published ones (for your own copies; the tests use it).
    """
    if subset not in MNIST_FILES:
        raise ValueError(f"subset must be one of {sorted(MNIST_FILES)}, got {subset!r}")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DatasetNotFoundError(
            f"MNIST folder {data_dir} does not exist; create it and put "
            f"{', '.join(n for n, _ in MNIST_FILES[subset])} there, or leave data_dir unset"
        )
    sums = {name: s for name, s in MNIST_FILES[subset]} | (checksums or {})
    dirs = _search_dirs(data_dir)
    paths = []
    for name, _ in MNIST_FILES[subset]:
        found = next((d / name for d in dirs if (d / name).is_file()), None)
        if found is None:
            if not download:
                raise DatasetNotFoundError(_not_found(name, dirs))
            target = Path(data_dir) if data_dir is not None else cache_dir()
            try:
                _download(name, target, sums[name])
            except DatasetNotFoundError as e:
                raise DatasetNotFoundError(_not_found(name, dirs) + f"\nDownload failed too: {e}") from None
            found = target / name
        if md5(found) != sums[name]:
            raise ChecksumError(
                f"{found} has MD5 {md5(found)}, expected {sums[name]}: the file is damaged or "
                "not the original; delete it and fetch it again"
            )
        paths.append(found)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise CorruptFileError(f"{paths[0]} holds {images.shape} images but {paths[1]} {labels.shape} labels")
    return (images.reshape(len(images), -1).astype(np.float32) / 255.0, labels.astype(np.int64))


def _not_found(name: str, dirs: list[Path]) -> str:
    where = "\n  ".join(str(d) for d in dirs)
    return (
        f"MNIST file {name} was not found in:\n  {where}\n"
        "Put the IDX .gz files in one of these folders, or set COURSE_DATA_DIR to a folder holding "
        "them (or a 'mnist' folder with them)."
    )


#: The 8x8 digits, bundled with the package (see ``course_lib/_data/README.md``).
DIGITS_FILE = Path(__file__).resolve().parent / "_data" / "digits.csv.gz"


def load_digits() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The 1,797 8x8 UCI digits bundled with course_lib (the set scikit-learn's ``load_digits``
    returns): X (1797, 64) in [0, 1], y (1797,)."""
    with gzip.open(DIGITS_FILE, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float64)  # (1797, 65): 64 pixels, label
    return (table[:, :-1] / 16.0).astype(np.float32), table[:, -1].astype(np.int64)


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_size: float | int = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with ``seed`` and split: returns X_train, X_test, y_train, y_test.

    ``test_size`` is a fraction in (0, 1) or a number of rows.
    """
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    n_test = int(round(test_size * n)) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves {n - n_test} training and {n_test} test rows")
    idx = np.random.default_rng(seed).permutation(n)
    test, train = idx[:n_test], idx[n_test:]
    return X[train], X[test], y[train], y[test]


def make_xor(
    n_per_corner: int = 50, noise: float = 0.15, rng: np.random.Generator | int = 0
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Noisy XOR: points around the four corners of the unit square, label = x1 XOR x2.

    X (4 n, 2), y (4 n,). No straight line separates the classes (chapter 1).
    """
    rng = np.random.default_rng(rng)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    X = np.repeat(corners, n_per_corner, axis=0) + rng.normal(0, noise, (4 * n_per_corner, 2))
    y = np.repeat(np.array([0, 1, 1, 0]), n_per_corner)
    return X, y.astype(np.int64)


@dataclass
class Dataset:
    """A train/test split with a name to print next to every result."""

    X_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    X_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    name: str  # "MNIST-10k" or "digits"
    fallback: bool  # True when MNIST was wanted but missing
    note: str  # one sentence for the page: what data this is and why

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(self.y_train.max()) + 1


def load_course_data(seed: int = 0, n_test: int = 2000) -> Dataset:
    """MNIST-10k (the 10,000 t10k digits, split 8000/2000 with ``seed``); digits if missing."""
    try:
        X, y = load_mnist("test", download=False)
    except DatasetError as e:
        X, y = load_digits()
        Xtr, Xte, ytr, yte = train_test_split(X, y, 0.2, seed)
        note = (
            f"MNIST is not available here ({type(e).__name__}), so this page uses the 1,797 bundled 8x8 "
            "digits instead: the numbers differ from MNIST's. Set COURSE_DATA_DIR to a folder with "
            "the MNIST files and rebuild to get them."
        )
        return Dataset(Xtr, ytr, Xte, yte, "digits", True, note)
    Xtr, Xte, ytr, yte = train_test_split(X, y, n_test, seed)
    note = f"MNIST-10k: the 10,000 MNIST t10k digits, {len(Xtr)} for training and {len(Xte)} for testing."
    return Dataset(Xtr, ytr, Xte, yte, "MNIST-10k", False, note)
