"""The networks of the training runs: MLP, small CNN, ResNet18/50 and VGG11.

Every model splits into a feature map and a linear classifier, the two objects neural collapse is
about (chapter 2):

    h = model.features(x)          # penultimate features, after global pooling: (N, d)
    z = model.classifier(h)        # logits W h + b; classifier is an nn.Linear with bias
    model(x) == model.classifier(model.features(x))

The ResNets follow the paper's CIFAR variant: a 3x3 stride-1 stem and no max-pool, so 32x32
inputs keep their resolution into the first stage.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_num_classes, check_positive_int

__all__ = ["MODELS", "DEFAULT_WIDTH", "build", "Classifier"]

MODELS = ("mlp", "cnn", "resnet18", "resnet50", "vgg11")
DEFAULT_WIDTH = {"mlp": 256, "cnn": 32, "resnet18": 64, "resnet50": 64, "vgg11": 64}


class Classifier(nn.Module):
    """A feature map ``body`` followed by a linear classifier: ``forward(x) = classifier(features(x))``."""

    body: nn.Sequential
    classifier: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features h (N, d), after global pooling: the vectors neural collapse studies."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MLP(Classifier):
    """``depth`` hidden layers Linear -> BatchNorm -> ReLU of ``width`` units on flattened images."""

    def __init__(self, num_classes: int, in_features: int, *, width: int = 256, depth: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers += [nn.Linear(in_features if i == 0 else width, width, bias=False),
                       nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNN(Classifier):
    """Three 3x3 conv blocks (width, 2*width, 4*width channels), one 2x2 max-pool, global average pool."""

    def __init__(self, num_classes: int, in_channels: int, *, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(in_channels, width), *_conv_bn(width, 2 * width), nn.MaxPool2d(2),
            *_conv_bn(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(4 * width, num_classes)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, channels: int, *, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = _shortcut(c_in, channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, channels: int, *, stride: int = 1):
        super().__init__()
        c_out = self.expansion * channels
        self.conv1 = nn.Conv2d(c_in, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + self.shortcut(x))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class ResNet(Classifier):
    """CIFAR-style ResNet: 3x3 stem, four stages (width, 2w, 4w, 8w channels), global average pool."""

    def __init__(self, block: type[BasicBlock | Bottleneck], stage_depths: tuple[int, ...],
                 num_classes: int, in_channels: int, *, width: int = 64):
        super().__init__()
        layers = _conv_bn(in_channels, width)
        c_in = width
        for i, depth in enumerate(stage_depths):
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(block(c_in, width * 2**i, stride=stride))
                c_in = block.expansion * width * 2**i
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c_in, num_classes)


class VGG(Classifier):
    """VGG11 with batch norm; max-pools stop once the map is 1x1, so small images work too."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, *, width: int = 64):
        super().__init__()
        plan = [1, "pool", 2, "pool", 4, 4, "pool", 8, 8, "pool", 8, 8, "pool"]
        layers: list[nn.Module] = []
        c_in, size = in_channels, image_size
        for item in plan:
            if item == "pool":
                if size > 1:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
            else:
                layers += _conv_bn(c_in, item * width)
                c_in = item * width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c_in, num_classes)


def build(name: str, num_classes: int, in_channels: int, image_size: int = 32,
          width: int | None = None) -> Classifier:
    """Build a network that exposes ``features(x)`` and ``classifier``.

    Parameters
    ----------
    name : "mlp", "cnn", "resnet18", "resnet50" or "vgg11"
    num_classes : K, the classifier's output size
    in_channels : image channels (1 for grey, 3 for colour)
    image_size : side of the square input images (the MLP's input size is
        ``in_channels * image_size**2``; VGG skips max-pools below 1x1)
    width : hidden units of the MLP, or base channels of the convolutional models;
        default :data:`DEFAULT_WIDTH` (the feature dimension d is width for the MLP, 4*width for the
        CNN, 8*width for ResNet18 and VGG11, 32*width for ResNet50)

    Returns
    -------
    Classifier (an ``nn.Module``), in training mode, on the CPU.

    Example
    -------
    >>> net = build("resnet18", num_classes=10, in_channels=3)
    >>> net.features(torch.zeros(2, 3, 32, 32)).shape, net.classifier
    (torch.Size([2, 512]), Linear(in_features=512, out_features=10, bias=True))
    """
    if name not in MODELS:
        raise ValueError(f"name must be one of {', '.join(MODELS)}; got {name!r}")
    num_classes = check_num_classes(num_classes)
    width = DEFAULT_WIDTH[name] if width is None else width
    in_channels, image_size, width = (check_positive_int(value, arg) for arg, value in
                                      (("in_channels", in_channels), ("image_size", image_size), ("width", width)))
    if name == "mlp":
        return MLP(num_classes, in_channels * image_size**2, width=width)
    if name == "cnn":
        return SmallCNN(num_classes, in_channels, width=width)
    if name == "resnet18":
        return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, width=width)
    if name == "resnet50":
        return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, width=width)
    return VGG(num_classes, in_channels, image_size, width=width)
