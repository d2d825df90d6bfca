"""Datasets: offline sources, deterministic splits, clear errors, device-resident batching."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from nclab import data
from nclab.train import TrainConfig, train


def test_digits_shapes_and_splits_cover_the_dataset():
    splits = {s: data.load("digits", s) for s in ("train", "val", "test")}
    for name, ds in splits.items():
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (1, 8, 8)
        assert ds.labels.dtype == torch.int64 and ds.num_classes == 10 and ds.split == name
        assert (ds.in_channels, ds.image_size) == (1, 8)
    assert len(splits["test"]) == 360 and len(splits["train"]) + len(splits["val"]) == 1437
    # The three splits together are exactly scikit-learn's 1797 images (as a multiset of rows).
    bunch = load_digits()
    expected = sorted(map(bytes, np.rint(bunch.images * 255 / 16).astype(np.uint8).reshape(1797, 64)))
    got = sorted(bytes(ds.images[i].flatten().numpy()) for ds in splits.values() for i in range(len(ds)))
    assert got == expected
    # Stratified: every class has 10% (rounded) of its training images in val.
    val_counts = torch.bincount(splits["val"].labels, minlength=10)
    all_counts = val_counts + torch.bincount(splits["train"].labels, minlength=10)
    assert torch.equal(val_counts, torch.round(0.1 * all_counts.double()).long())


def test_digits_split_is_deterministic_and_normalization_matches_numpy():
    a, b = data.load("digits", "val"), data.load("digits", "val")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    full = torch.cat([data.load("digits", "train").images, a.images]).numpy() / 255.0
    assert a.mean[0] == pytest.approx(full.mean(), rel=1e-9)
    assert a.std[0] == pytest.approx(full.std(), rel=1e-9)


def test_gaussians_are_deterministic_and_seeded():
    a = data.load("gaussians", "train", num_classes=3, dim=5, n_per_class=40, seed=7)
    b = data.load("gaussians", "train", num_classes=3, dim=5, n_per_class=40, seed=7)
    c = data.load("gaussians", "train", num_classes=3, dim=5, n_per_class=40, seed=8)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.images.shape == (108, 5, 1, 1) and a.num_classes == 3
    test = data.load("gaussians", "test", num_classes=3, dim=5, n_per_class=40, seed=7)
    assert len(test) == 120 and not torch.equal(test.images[:108], a.images)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="name must be one of"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load("digits", "dev")
    with pytest.raises(ValueError, match="only accepted by the 'gaussians'"):
        data.load("digits", dim=3)


def test_offline_cifar10_gives_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(FileNotFoundError) as info:
        data.load("cifar10", "train", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "cifar-10-python.tar.gz" in message
    assert "\n" not in message and message.count(". ") == 0
    assert "urlopen" not in message and "URLError" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_failed_download_is_converted(tmp_path, monkeypatch):
    import urllib.error

    from torchvision.datasets import CIFAR10

    def refuse(self):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(data, "_reachable", lambda url, timeout=3.0: True)
    monkeypatch.setattr(CIFAR10, "download", refuse)
    with pytest.raises(FileNotFoundError, match="cannot be downloaded") as info:
        data.load("cifar10", "test", root=tmp_path)
    assert "URLError" not in str(info.value) and info.value.__cause__ is None


def test_reachable_is_false_for_a_closed_port():
    assert not data._reachable("http://127.0.0.1:9/", timeout=1.0)


def test_missing_tiny_imagenet_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200"):
        data.load("tiny-imagenet", "train", root=tmp_path)


def _fashion_available() -> bool:
    names = data._IDX_FILES  # what nclab.data reads, in the folder it reads them from
    raw = data.data_root() / "FashionMNIST" / "raw"
    return all((raw / n).exists() for n in names) or all(
        (data.DEBIAN_FASHION_MNIST / f"{n}.gz").exists() for n in names)


@pytest.mark.slow
def test_one_epoch_on_real_fashion_mnist():
    if not _fashion_available():
        why = ("Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist, or put the IDX "
               "files in $NCLAB_DATA/FashionMNIST/raw)")
        if os.environ.get("CI"):  # CI installs it: there, missing data is a failure
            pytest.fail(why)
        pytest.skip(why)
    train_set = data.load("fashion-mnist", "train")
    test_set = data.load("fashion-mnist", "test")
    assert train_set.images.shape == (54000, 1, 28, 28) and len(test_set) == 10000
    assert torch.equal(torch.bincount(test_set.labels), torch.full((10,), 1000))
    config = TrainConfig(dataset="fashion-mnist", model="mlp", width=64, epochs=1, batch_size=256, lr=0.05,
                         threads=1)
    result = train(config, progress=False)
    # A linear classifier already gets below 20% test error on Fashion-MNIST; chance is 90%.
    assert result.final["test_error"] < 0.25 and result.final["train_error"] < 0.25


def test_shuffled_batches_visit_every_sample_once():
    ds = data.load("digits", "train")
    batches = data.DeviceBatches(ds, "cpu")
    labels = torch.cat([y for _, y in batches.shuffled(100, torch.Generator().manual_seed(0))])
    assert len(labels) == len(ds) - (len(ds) % 100 == 1)
    assert torch.equal(labels.sort().values, ds.labels.sort().values)
    # Normalized: about zero mean and unit variance per channel.
    assert abs(float(batches.images.mean())) < 0.05 and abs(float(batches.images.std()) - 1) < 0.05


def test_batch_order_depends_only_on_the_generator():
    batches = data.DeviceBatches(data.load("digits", "train"), "cpu")
    first = [y for _, y in batches.shuffled(64, torch.Generator().manual_seed(3))]
    again = [y for _, y in batches.shuffled(64, torch.Generator().manual_seed(3))]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_crop_and_flip_matches_a_per_image_loop():
    x = torch.randn(16, 3, 12, 12)
    generator = torch.Generator().manual_seed(5)
    out = data._crop_and_flip(x, generator, padding=2)
    replay = torch.Generator().manual_seed(5)
    offsets = torch.randint(0, 5, (2, 16), generator=replay)
    flips = torch.rand(16, generator=replay) < 0.5
    for i in range(16):
        padded = F.pad(x[i], (2, 2, 2, 2))
        crop = padded[:, offsets[0, i]:offsets[0, i] + 12, offsets[1, i]:offsets[1, i] + 12]
        expected = crop.flip(-1) if flips[i] else crop
        assert torch.equal(out[i], expected)


def test_corrupt_files_are_named_as_corrupt_not_as_missing(tmp_path, monkeypatch):
    # Any download attempt would be a bug here: the files are present.
    monkeypatch.setattr(data, "_reachable", lambda url, timeout=3.0: pytest.fail("tried to download"))
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data._IDX_FILES:
        (raw / name).write_bytes(b"\x00\x00\x08\x03" + bytes(100))  # an IDX header, then too few bytes
    with pytest.raises(ValueError, match=f"the mnist files in {raw} cannot be read .*corrupt"):
        data.load("mnist", "train", root=tmp_path)
    from torchvision.datasets import CIFAR10

    batches = tmp_path / CIFAR10.base_folder
    batches.mkdir()
    for name, _ in CIFAR10.train_list + CIFAR10.test_list:
        (batches / name).write_bytes(b"garbage")
    with pytest.raises(ValueError, match=f"the cifar10 files in {batches} cannot be read .*checksums") as info:
        data.load("cifar10", "test", root=tmp_path)
    assert "is not in" not in str(info.value)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_a_caller_changing_its_split_cannot_corrupt_the_cached_dataset(split):
    """Every split is read from one copy cached per process; each call hands out its own tensors."""
    first = data.load("digits", split)
    images, labels = first.images.clone(), first.labels.clone()
    first.images.zero_()
    first.labels.fill_(3)
    again = data.load("digits", split)
    assert torch.equal(again.images, images) and torch.equal(again.labels, labels)
