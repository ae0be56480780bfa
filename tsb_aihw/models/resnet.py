"""ResNet-18 for CIFAR as in the TSB authors' NF_Training code (docs/notes/tsb-method.md §5).

11.16 M weights at width 1."""
from __future__ import annotations

from torch import Tensor, nn

from tsb_aihw.models.common import init_reference, scale_channels
from tsb_aihw.models.registry import register_model


class BasicBlock(nn.Module):
    """3x3 conv-BN-ReLU, 3x3 conv-BN, + shortcut (1x1 conv + BN when the shape changes), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu2(out + identity)


class ResNet18(nn.Module):
    """3x3 stride-1 stem (no max-pool), BasicBlocks [2,2,2,2] at 64/128/256/512, global avg-pool, FC."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        input_size: int = 32,
        round_to: int = 8,
        fc_init: str = "fan_out",
    ) -> None:
        super().__init__()
        self.input_size = input_size
        widths = [scale_channels(c, width, round_to) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        c_in = widths[0]
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            stage = nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out))
            self.add_module(f"layer{i + 1}", stage)
            c_in = c_out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(c_in, num_classes)
        init_reference(self, fc_init)  # fc_init="fan_in": see common.init_linear_fan_in

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model
def resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, **cfg) -> ResNet18:
    """ResNet-18 (CIFAR, 3x32x32); ``width`` scales every stage."""
    return ResNet18(num_classes=num_classes, in_channels=in_channels, width=width, **cfg)
