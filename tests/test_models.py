"""Models: every network splits into features(x) and a linear classifier with bias."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nclab import models

# (name, in_channels, image_size, feature dimension with the default width)
CASES = [("mlp", 1, 8, 256), ("cnn", 1, 8, 128), ("resnet18", 3, 32, 512), ("resnet50", 3, 8, 2048),
         ("vgg11", 3, 32, 512), ("vgg11", 1, 8, 512)]


@pytest.mark.parametrize("name, channels, size, dim", CASES)
def test_features_and_classifier(name, channels, size, dim):
    torch.manual_seed(0)
    net = models.build(name, num_classes=7, in_channels=channels, image_size=size).eval()
    x = torch.randn(3, channels, size, size)
    with torch.no_grad():
        h = net.features(x)
        assert h.shape == (3, dim)
        assert type(net.classifier) is nn.Linear and net.classifier.bias is not None
        assert net.classifier.weight.shape == (7, dim)
        # forward is exactly classifier(features): recompute the affine map by hand.
        assert torch.allclose(net(x), h @ net.classifier.weight.T + net.classifier.bias, atol=1e-5)


def test_resnet18_is_the_cifar_variant():
    net = models.build("resnet18", num_classes=10, in_channels=3)
    # The CIFAR ResNet18 (3x3 stem, no max-pool) has 11,173,962 parameters for 10 classes.
    assert sum(p.numel() for p in net.parameters()) == 11_173_962
    stem = net.body[0]
    assert isinstance(stem, nn.Conv2d) and stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_width_sets_the_feature_dimension():
    assert models.build("mlp", 3, 1, 8, width=32).classifier.in_features == 32
    assert models.build("cnn", 3, 1, 8, width=8).classifier.in_features == 32
    assert models.build("resnet18", 3, 3, 32, width=4).classifier.in_features == 32


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="name must be one of"):
        models.build("resnet34", 10, 3)
    with pytest.raises(ValueError, match="num_classes"):
        models.build("mlp", 1, 3)
    with pytest.raises(ValueError, match="width"):
        models.build("mlp", 10, 3, width=0)
    with pytest.raises(ValueError, match="in_channels"):
        models.build("cnn", 10, 0)
