"""Datasets for the training runs, and device-resident batching.

:func:`load` returns one split of a dataset as a :class:`Dataset`: every image in one tensor.
:class:`DeviceBatches` puts a split on the training device once, normalized, and then serves
shuffled (and optionally augmented) mini-batches with plain tensor indexing, so the training loop
has no ``DataLoader``, no worker processes and no per-sample Python on its hot path.

Datasets
--------
- ``digits``: scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), shipped inside
  scikit-learn: works offline everywhere; the book's default.
- ``fashion-mnist``: 28x28 grey clothing images; read with torchvision. When absent from the data
  root, the copy of Debian's package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist/``) is unpacked into the root.
- ``mnist``, ``cifar10``, ``cifar100``, ``stl10``: torchvision's readers; downloaded only when the
  data is missing and the host that serves it answers.
- ``tiny-imagenet``: ``tiny-imagenet-200/`` (train folders and ``val/val_annotations.txt``).
- ``gaussians``: a synthetic Gaussian mixture for tests (options ``num_classes``, ``dim``,
  ``n_per_class``, ``separation``, ``seed``).

Splits
------
``"test"`` is the dataset's test set (for digits: a stratified 20% of the 1797 images, fixed
seed). ``"val"`` is a stratified 10% of the training set chosen with a fixed seed, held out for
temperature scaling (chapter 5); ``"train"`` is the rest. The same call gives the same split on
every machine.

Data root: the ``root`` argument, else the environment variable ``NCLAB_DATA``, else
``~/.nclab/data``.
"""

from __future__ import annotations

import functools
import gzip
import os
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import settings
from ._checks import check_num_classes, check_positive_int
from ._files import _write_atomically

__all__ = ["Dataset", "DeviceBatches", "DATASETS", "load", "data_root", "VAL_FRACTION"]

DATASETS = (
    "digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "stl10", "tiny-imagenet", "gaussians",
)
SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.1
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_SPLIT_SEED = 0  # fixes the digits train/test split and every train/val split


@dataclass(frozen=True)
class Dataset:
    """One split of a dataset, all in memory.

    Attributes
    ----------
    name, split : the dataset's registry name and "train", "val" or "test"
    images : tensor (N, C, H, W), uint8 in [0, 255] (real images) or float32 (synthetic data)
    labels : int64 tensor (N,)
    num_classes : K
    mean, std : per-channel normalization constants, computed on the full training file, in the
        units of ``images / 255`` for uint8 images and of ``images`` otherwise
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder datasets are read from: ``root``, else ``$NCLAB_DATA``, else ``~/.nclab/data``."""
    if root is not None:
        return Path(root).expanduser()
    return settings.data_dir()


def load(name: str, split: str = "train", root: str | os.PathLike | None = None, *,
         train_size: int | None = None, **options) -> Dataset:
    """Load one split of a dataset into memory.

    Parameters
    ----------
    name : one of :data:`DATASETS`
    split : "train", "val" (a fixed stratified 10% of the training set, held out for temperature
        scaling) or "test"
    root : data folder; default ``$NCLAB_DATA`` or ``~/.nclab/data`` (unused for digits and gaussians)
    train_size : only for ``split="train"``: keep this many training images, the same number from
        every class (so it must be a multiple of K), chosen with a fixed seed (the same subset on
        every machine); None keeps the whole split
    **options : only for ``gaussians``: ``num_classes`` (4), ``dim`` (8), ``n_per_class`` (100,
        per split before the val carve), ``separation`` (4.0, distance scale of the class means),
        ``seed`` (0)

    Returns
    -------
    Dataset

    Raises
    ------
    FileNotFoundError
        The data is not on disk and cannot be downloaded; the message says what to put where.

    Example
    -------
    >>> train = load("digits", "train")
    >>> train.images.shape, train.num_classes
    (torch.Size([1295, 1, 8, 8]), 10)
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}; got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if options and name != "gaussians":
        raise ValueError(f"options {sorted(options)} are only accepted by the 'gaussians' dataset")
    if name == "gaussians":
        images, labels, num_classes = _gaussians(split != "test", **options)
        mean, std = (0.0,) * images.shape[1], (1.0,) * images.shape[1]
    else:
        images, labels, num_classes, mean, std = _read(name, str(data_root(root)), split != "test")
    if split != "test":
        val = _val_mask(labels, num_classes)
        keep = val if split == "val" else ~val
        images, labels = images[keep], labels[keep]   # indexing copies
    else:
        # _read's tensors are cached for the process: the caller gets its own copy to change
        images, labels = images.clone(), labels.clone()
    if train_size is not None:
        if split != "train":
            raise ValueError(f"train_size applies to the 'train' split only, not {split!r}")
        keep = _subset(labels, num_classes, check_positive_int(train_size, "train_size"), name)
        images, labels = images[keep], labels[keep]
    return Dataset(name, split, images, labels, num_classes, mean, std)


def _val_mask(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A fixed stratified choice of VAL_FRACTION of each class (NumPy's legacy RNG is stable across versions)."""
    rng = np.random.RandomState(_SPLIT_SEED)
    y = labels.numpy()
    mask = np.zeros(len(y), dtype=bool)
    for k in range(num_classes):
        members = np.flatnonzero(y == k)
        mask[rng.permutation(members)[: int(round(VAL_FRACTION * len(members)))]] = True
    return torch.from_numpy(mask)


def _subset(labels: torch.Tensor, num_classes: int, size: int, name: str) -> torch.Tensor:
    """Indices of a fixed balanced subset: ``size / K`` images of each class, in the split's order."""
    if size % num_classes:
        raise ValueError(f"train_size must be a multiple of the number of classes ({num_classes}), so that "
                         f"every class has the same number of images, as neural collapse assumes; got {size}")
    per_class = size // num_classes
    rng = np.random.RandomState(_SPLIT_SEED + 1)
    y = labels.numpy()
    chosen = []
    for k in range(num_classes):
        members = np.flatnonzero(y == k)
        if len(members) < per_class:
            raise ValueError(f"train_size {size} asks for {per_class} images of class {k}, but the "
                             f"{name} training split has only {len(members)}")
        chosen.append(rng.permutation(members)[:per_class])
    return torch.from_numpy(np.sort(np.concatenate(chosen)))


@functools.lru_cache(maxsize=4)
def _read(name: str, root: str, train: bool):
    """Images (uint8, NCHW), labels, K and normalization of the training or test file, cached per process."""
    reader = {
        "digits": _digits, "fashion-mnist": _fashion_mnist, "mnist": _mnist, "cifar10": _cifar,
        "cifar100": _cifar, "stl10": _stl10, "tiny-imagenet": _tiny_imagenet,
    }[name]
    images, labels, num_classes = reader(name, Path(root), train)
    mean, std = _channel_stats(images) if train else _read(name, root, True)[3:]
    return images, labels, num_classes, mean, std


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units, accumulated in float64 by chunks."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for chunk in images.split(4096):
        x = chunk.double().div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _digits(name: str, root: Path, train: bool):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 grey levels -> 0..255
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, bunch.target, test_size=0.2, stratify=bunch.target, random_state=_SPLIT_SEED
    )
    x, y = (x_train, y_train) if train else (x_test, y_test)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y).long(), 10


def _gaussians(train: bool, num_classes: int = 4, dim: int = 8, n_per_class: int = 100,
               separation: float = 4.0, seed: int = 0):
    num_classes = check_num_classes(num_classes)
    dim = check_positive_int(dim, "dim")
    n_per_class = check_positive_int(n_per_class, "n_per_class", minimum=2)
    means = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(seed))
    means *= separation / dim**0.5
    noise = torch.Generator().manual_seed(seed + (1 if train else 2))
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    points = means[labels] + torch.randn(len(labels), dim, generator=noise)
    return points.view(len(labels), dim, 1, 1), labels, num_classes


# Real datasets --------------------------------------------------------------------------------

def _missing(name: str, folder: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{name} is not in {folder} and cannot be downloaded from here: put {what} in that folder "
        f"(or choose another data folder with NCLAB_DATA or root=)."
    )


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the host serving ``url`` accepts a connection (so a download is worth trying)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _torchvision(cls, url: str, name: str, folder: Path, what: str, root: Path, **kwargs):
    """Construct a torchvision dataset from disk; download only when its folder is empty and the host answers.

    Files that are present but fail torchvision's checks or parsing (truncated, corrupt, some
    missing) are a ValueError that says so: downloading over them is not tried, and saying they
    are absent would be false.
    """
    try:
        return cls(str(root), download=False, **kwargs)
    except Exception as exc:  # noqa: BLE001 - torchvision reports bad files as RuntimeError, AssertionError, ...
        if _holds_files(folder):
            if isinstance(exc, RuntimeError):  # "Dataset not found or corrupted. You can use download=True ..."
                found = "torchvision finds files missing or failing their checksums"
            else:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                found = f"torchvision's reader raised {type(exc).__name__}{': ' + first if first else ''}"
            raise ValueError(f"the {name} files in {folder} cannot be read ({found}): they are truncated, "
                             f"corrupt or incomplete; replace them with {what}") from None
    if not _reachable(url):
        raise _missing(name, folder, what) from None
    try:
        return cls(str(root), download=True, **kwargs)
    except Exception:
        raise _missing(name, folder, what) from None


def _holds_files(folder: Path) -> bool:
    try:
        return any(p.is_file() for p in folder.rglob("*"))
    except OSError:
        return False


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _mnist(name: str, root: Path, train: bool):
    from torchvision.datasets import MNIST

    folder = root / "MNIST" / "raw"
    what = "the four unpacked IDX files (" + ", ".join(_IDX_FILES) + ")"
    ds = _torchvision(MNIST, MNIST.mirrors[0], name, folder, what, root, train=train)
    return ds.data.unsqueeze(1).contiguous(), ds.targets.long(), 10


def _fashion_mnist(name: str, root: Path, train: bool):
    from torchvision.datasets import FashionMNIST

    folder = root / "FashionMNIST" / "raw"
    if not all((folder / f).exists() for f in _IDX_FILES) and DEBIAN_FASHION_MNIST.is_dir():
        _unpack_debian_fashion_mnist(folder)
    what = ("the four unpacked IDX files (" + ", ".join(_IDX_FILES) + "), or install them with "
            "'apt-get install dataset-fashion-mnist'")
    ds = _torchvision(FashionMNIST, FashionMNIST.mirrors[0], name, folder, what, root, train=train)
    return ds.data.unsqueeze(1).contiguous(), ds.targets.long(), 10


def _unpack_debian_fashion_mnist(folder: Path) -> None:
    """Gunzip Debian's copy into torchvision's raw folder (each file written atomically: whole or not at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem in _IDX_FILES:
        source = DEBIAN_FASHION_MNIST / f"{stem}.gz"
        if (folder / stem).exists() or not source.exists():
            continue
        with gzip.open(source, "rb") as fin:
            _write_atomically(folder / stem, fin.read())  # at most 47 MB (the training images)


def _cifar(name: str, root: Path, train: bool):
    from torchvision.datasets import CIFAR10, CIFAR100

    cls, k = (CIFAR10, 10) if name == "cifar10" else (CIFAR100, 100)
    folder = root / cls.base_folder
    what = f"the contents of {cls.filename} (from {cls.url})"
    ds = _torchvision(cls, cls.url, name, folder, what, root, train=train)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(ds.targets, dtype=torch.long), k


def _stl10(name: str, root: Path, train: bool):
    from torchvision.datasets import STL10

    folder = root / STL10.base_folder
    what = f"the contents of {STL10.filename} (from {STL10.url})"
    ds = _torchvision(STL10, STL10.url, name, folder, what, root, split="train" if train else "test")
    return torch.from_numpy(ds.data).contiguous(), torch.from_numpy(ds.labels).long(), 10


def _tiny_imagenet(name: str, root: Path, train: bool):
    from PIL import Image
    from torchvision.datasets import ImageFolder

    folder = root / "tiny-imagenet-200"
    annotations = folder / "val" / "val_annotations.txt"
    if not (folder / "train").is_dir() or not annotations.exists():
        what = "the unzipped tiny-imagenet-200.zip (train/ and val/ folders)"
        raise _missing(name, folder, what) from None
    train_folder = ImageFolder(str(folder / "train"))
    if train:
        paths, labels = zip(*train_folder.samples)
    else:
        rows = [line.split("\t")[:2] for line in annotations.read_text().splitlines() if line]
        paths = [str(folder / "val" / "images" / file) for file, _ in rows]
        labels = [train_folder.class_to_idx[wnid] for _, wnid in rows]
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels), 200


# Device-resident batching -----------------------------------------------------------------------

class DeviceBatches:
    """A split on the training device, normalized once, served as mini-batches by tensor indexing.

    Shuffling is one ``torch.randperm`` per epoch drawn from a seeded CPU generator (so the order
    is the same on every device and can be saved and restored); augmentation (random crop with
    zero padding, horizontal flip) is a batched tensor op on the device. This follows the
    CIFAR-10 speed runs: with the data already on the GPU, the hot path is a gather and a forward.

    Parameters
    ----------
    dataset : the split to serve
    device : where the normalized images and labels live
    channels_last : store images in channels-last memory order (faster convolutions on CUDA)

    Example
    -------
    >>> batches = DeviceBatches(load("digits", "train"), "cpu")
    >>> x, y = next(batches.shuffled(128, torch.Generator().manual_seed(0)))
    >>> x.shape, y.shape
    (torch.Size([128, 1, 8, 8]), torch.Size([128]))
    """

    def __init__(self, dataset: Dataset, device: str | torch.device = "cpu", channels_last: bool = False):
        self.device = torch.device(device)
        x = dataset.images.to(self.device)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        mean = torch.tensor(dataset.mean, device=self.device).view(1, -1, 1, 1)
        std = torch.tensor(dataset.std, device=self.device).view(1, -1, 1, 1)
        x = (x - mean) / std
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.images = x.contiguous(memory_format=self.memory_format)
        self.labels = dataset.labels.to(self.device)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def shuffled(self, batch_size: int, generator: torch.Generator, augment: bool = False):
        """Yield (images, labels) mini-batches in a random order drawn from ``generator`` (CPU).

        With ``augment``, each image is padded by an eighth of its size (4 pixels at 32x32) with
        zeros (the mean, after normalization), randomly cropped back and flipped with probability 1/2. A last batch of a single sample
        is dropped (batch norm cannot train on it).
        """
        padding = max(1, self.images.shape[-1] // 8)
        order = torch.randperm(len(self), generator=generator).to(self.device)
        for start in range(0, len(self), batch_size):
            index = order[start:start + batch_size]
            if len(index) < 2:
                break
            x = self.images[index]
            if augment:
                x = _crop_and_flip(x, generator, padding).contiguous(memory_format=self.memory_format)
            yield x, self.labels[index]

    def in_order(self, batch_size: int):
        """Yield (images, labels) mini-batches in storage order, as views (for measurement passes)."""
        for start in range(0, len(self), batch_size):
            yield self.images[start:start + batch_size], self.labels[start:start + batch_size]


def _crop_and_flip(x: torch.Tensor, generator: torch.Generator, padding: int) -> torch.Tensor:
    """Random crop after zero padding and random horizontal flip, for the whole batch at once."""
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    rows = (offsets[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(w, device=x.device))[:, None, None, :]
    cols = torch.where(flips[:, None, None, None], cols.flip(-1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]
