"""MNIST and Fashion-MNIST from local IDX / npz files, with a checked download as the last resort.

Search order (the first location holding a complete copy wins):

1. ``path=``: one ``.npz`` file, or a directory with the four IDX files (``.gz`` or raw) or
   an ``.npz`` (``mnist.npz``, ``fashion-mnist.npz``, ...), directly or in a ``mnist/`` /
   ``fashion-mnist/`` subdirectory. With ``path=`` nothing else is searched.
2. ``$FASTNET_DATA`` (same layout)
3. ``~/.fastnet/datasets`` (same layout; downloads go to its subdirectory)
4. Fashion-MNIST only: ``/usr/share/datasets/fashion-mnist/`` (Debian's ``dataset-fashion-mnist``)
5. download from the public mirrors (sha256-checked), unless ``download=False`` or
   ``$FASTNET_OFFLINE=1``.

``.npz`` files hold ``x_train, y_train, x_test, y_test`` (the Keras layout; read with
``allow_pickle=False``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import download as _download
from ._format import check_split, dataset_divisor, format_images, format_labels
from .idx import read_idx_pair

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset may live and how to download it."""

    name: str
    subdir: str
    npz_names: tuple
    files: dict  # role -> (IDX file name without .gz, sha256 of the .gz)
    mirrors: tuple  # base URLs, tried in order
    system_dirs: tuple = ()
    class_names: tuple = ()


MNIST = DatasetSpec(
    name="MNIST",
    subdir="mnist",
    npz_names=("mnist.npz",),
    files={
        "train_images": ("train-images-idx3-ubyte", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train_labels": ("train-labels-idx1-ubyte", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "test_images": ("t10k-images-idx3-ubyte", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "test_labels": ("t10k-labels-idx1-ubyte", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    class_names=tuple(str(i) for i in range(10)),
)

FASHION_MNIST = DatasetSpec(
    name="Fashion-MNIST",
    subdir="fashion-mnist",
    npz_names=("fashion-mnist.npz", "fashion_mnist.npz"),
    files={
        "train_images": ("train-images-idx3-ubyte", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train_labels": ("train-labels-idx1-ubyte", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "test_images": ("t10k-images-idx3-ubyte", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "test_labels": ("t10k-labels-idx1-ubyte", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)


def cache_dir() -> Path:
    """``~/.fastnet/datasets``: where downloads are stored."""
    return Path.home() / ".fastnet" / "datasets"


def read_npz_splits(path, where: str):
    """The four Keras-layout arrays of an ``.npz`` file, checked."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # not a zip, truncated, or holding pickled objects
        raise ValueError(f"{where}: cannot read {path} as an .npz of arrays ({type(e).__name__}: {e})") from None
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{where}: {path} lacks arrays {missing} (has {sorted(arrays)})")
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        check_split(x, y, f"{where} {path} {split}")
        out.append((x, y))
    return tuple(out)


def _idx_files(directory: Path, spec: DatasetSpec):
    """role -> existing file (``.gz`` preferred), or None when any of the four is absent."""
    found = {}
    for role in ROLES:
        base = spec.files[role][0]
        hit = next((directory / n for n in (base + ".gz", base) if (directory / n).is_file()), None)
        if hit is None:
            return None
        found[role] = hit
    return found


def _find_in(directory: Path, spec: DatasetSpec):
    """("npz", file) or ("idx", {role: file}) for a complete copy in ``directory`` or its subdir."""
    for d in (directory, directory / spec.subdir):
        if not d.is_dir():
            continue
        files = _idx_files(d, spec)
        if files:
            return "idx", files
        for name in spec.npz_names:
            if (d / name).is_file():
                return "npz", d / name
    return None


def _read(kind, where, spec: DatasetSpec):
    if kind == "npz":
        return read_npz_splits(where, spec.name)
    (xtr, ytr) = read_idx_pair(where["train_images"], where["train_labels"])
    (xte, yte) = read_idx_pair(where["test_images"], where["test_labels"])
    return (xtr, ytr), (xte, yte)


def _download_all(spec: DatasetSpec, target: Path, opener=None):
    files = {}
    for role in ROLES:
        base, sha = spec.files[role]
        dest = target / (base + ".gz")
        if not (dest.is_file() and _download.sha256_file(dest) == sha):
            _download.fetch([m + base + ".gz" for m in spec.mirrors], dest, sha, opener=opener)
        files[role] = dest
    return files


def _verify_cached(hit, spec: DatasetSpec) -> None:
    """Files in the download cache (``~/.fastnet/datasets/<name>/``) must still be the downloaded ones:
    each ``.gz`` there is checked against its pinned sha256 (a truncated or altered cache file would
    otherwise be trusted forever). Files the user put elsewhere are not pinned."""
    kind, where = hit
    if kind != "idx":
        return
    for role, file in where.items():
        expected = spec.files[role][1]
        in_cache = file.parent.resolve() == (cache_dir() / spec.subdir).resolve()
        if in_cache and file.suffix == ".gz" and _download.sha256_file(file) != expected:
            raise ValueError(
                f"{spec.name}: cached file {file} has sha256 {_download.sha256_file(file)}, expected {expected} "
                f"(corrupt or altered); delete it to download it again"
            )


def locate(spec: DatasetSpec, path=None, download=None, opener=None):
    """Find (or download) a complete copy of ``spec``; returns what ``_read`` takes."""
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return "npz", p
        if not p.exists():
            raise FileNotFoundError(f"{spec.name}: path {p} does not exist")
        hit = _find_in(p, spec)
        if hit is None:
            raise FileNotFoundError(
                f"{spec.name}: no {'/'.join(spec.npz_names)} and not all four IDX files "
                f"({', '.join(spec.files[r][0] + '[.gz]' for r in ROLES)}) in {p} or {p / spec.subdir}"
            )
        return hit
    searched = []
    env = os.environ.get("FASTNET_DATA")
    dirs = ([Path(env).expanduser()] if env else []) + [cache_dir()] + [Path(d) for d in spec.system_dirs]
    for d in dirs:
        hit = _find_in(d, spec)
        if hit is not None:
            _verify_cached(hit, spec)
            return hit
        searched += [str(d), str(d / spec.subdir)]
    allowed = (not _download.offline()) if download is None else bool(download)
    reason = "downloads are disabled"
    if allowed:
        try:
            return "idx", _download_all(spec, cache_dir() / spec.subdir, opener=opener)
        except OSError as e:
            reason = f"download failed ({e})"
    raise FileNotFoundError(
        f"{spec.name} not found: looked in {', '.join(dict.fromkeys(searched))}; {reason}. "
        f"Put {spec.npz_names[0]} (arrays x_train, y_train, x_test, y_test) or the four IDX files "
        f"({', '.join(spec.files[r][0] + '.gz' for r in ROLES)}) in one of those directories, "
        f"set FASTNET_DATA to a directory holding them, or pass path= (--data-dir on the command line)."
    )


def load(spec: DatasetSpec, path=None, *, normalize=False, flatten=False, dtype=np.float32, download=None, opener=None):
    """Load any MNIST-layout dataset described by ``spec`` (see :func:`mnist`)."""
    kind, where = locate(spec, path, download, opener)
    (xtr, ytr), (xte, yte) = _read(kind, where, spec)
    divisor = dataset_divisor(xtr) if normalize else 1.0
    return tuple(
        (format_images(x, normalize=normalize, flatten=flatten, scale=divisor, dtype=dtype), format_labels(y))
        for x, y in ((xtr, ytr), (xte, yte))
    )


def mnist(path=None, *, normalize: bool = False, flatten: bool = False, dtype=np.float32, download=None):
    """Handwritten digits: ``(x_train, y_train), (x_test, y_test)`` (60000 / 10000 samples).

    Images are uint8 ``(N, 28, 28)`` (``flatten=True``: ``(N, 784)``); with ``normalize=True``
    they are ``dtype`` (float32) in [0, 1], NCHW ``(N, 1, 28, 28)`` or flat ``(N, 784)``.
    Labels are int64 class ids 0..9. See the module docstring for where files are looked for;
    ``download=False`` never touches the network (``None``: allowed unless ``$FASTNET_OFFLINE``).
    """
    return load(MNIST, path, normalize=normalize, flatten=flatten, dtype=dtype, download=download)


def fashion_mnist(path=None, *, normalize: bool = False, flatten: bool = False, dtype=np.float32, download=None):
    """Zalando's Fashion-MNIST (10 clothing classes, ``FASHION_MNIST.class_names``); same layout
    and options as :func:`mnist`, also found in Debian's ``/usr/share/datasets/fashion-mnist/``."""
    return load(FASHION_MNIST, path, normalize=normalize, flatten=flatten, dtype=dtype, download=download)
