"""LeNet-3: the paper's three-weight-layer MNIST net (two 5x5 convs + one classifier), sized for one k=16 TSB.

The paper does not describe LeNet-3 (docs/notes/tsb-method.md §5), so this is our reading: conv 1->32 5x5, BN, ReLU,
2x2 max-pool; conv 32->64 5x5, BN, ReLU, 2x2 max-pool; FC (64*s*s)->classes. On 1x32x32 MNIST this is
800 + 51,200 + 16,000 = 68,000 weights, and one shared 16x16 block (256 weights) is 0.376% of them: just
inside the paper's 0.4% verify budget. Smaller inputs (8x8 sklearn digits) use 'same' padding and a
computed FC size, so the FC layer (not the convs) changes; the budget then allows only k=8.
"""
from __future__ import annotations

from torch import Tensor, nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.models.common import check_input_size, init_kaiming_fan_out, scale_channels
from tsb_aihw.models.registry import register_model


def _lenet_feature_size(input_size: int, padding: int) -> int:
    after_conv1 = input_size + 2 * padding - 4
    after_conv2 = after_conv1 // 2 + 2 * padding - 4
    return after_conv2 // 2 if after_conv1 >= 2 and after_conv2 >= 2 else 0


class LeNet3(nn.Module):
    """conv-BN-ReLU-pool x2 + FC; one module per op so every op has a name (masks, sites, hooks)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: float = 1.0,
        input_size: int = 32,
        padding: int | None = None,
        round_to: int = 8,
    ) -> None:
        super().__init__()
        if padding is None:
            padding = 0 if input_size >= 28 else 2
        side = _lenet_feature_size(input_size, padding)
        if side < 1:
            raise ConfigError(
                f"lenet3 cannot take {input_size}x{input_size} inputs with padding={padding}: the feature map "
                "vanishes; use input_size >= 14 with padding=0, or padding=2 for inputs >= 4"
            )
        c1, c2 = scale_channels(32, width, round_to), scale_channels(64, width, round_to)
        self.input_size = input_size
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=padding, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=padding, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.relu2 = nn.ReLU(inplace=True)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(c2 * side * side, num_classes)
        init_kaiming_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        check_input_size(x, self.input_size, "lenet3")
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        return self.fc(self.flatten(x))


@register_model
def lenet3(num_classes: int = 10, in_channels: int = 1, width: float = 1.0, **cfg) -> LeNet3:
    """LeNet-3 for 1x32x32 MNIST (``input_size``/``padding`` adapt it to other sizes)."""
    return LeNet3(num_classes=num_classes, in_channels=in_channels, width=width, **cfg)
