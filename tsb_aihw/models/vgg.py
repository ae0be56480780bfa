"""VGG-8 for CIFAR as in the TSB authors' NF_Training code (docs/notes/tsb-method.md §5): 12.90 M weights at width 1."""
from __future__ import annotations

from torch import Tensor, nn

from tsb_aihw.models.common import check_input_size, init_reference, scale_channels
from tsb_aihw.models.registry import register_model

_PLAN = (64, 128, "M", 256, 256, "M", 512, 512, "M")


class VGG8(nn.Module):
    """Six 3x3 conv-BN-ReLU (no conv bias), three 2x2 max-pools, FC (C*s*s)->1024, ReLU, FC 1024->classes.

    Every op is its own named module (``conv1..6``, ``bn1..6``, ``relu1..7``, ``pool1..3``, ``fc1``, ``fc2``:
    NF_Training's names for the weight layers) so sites, masks and hooks can address each one.
    """

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
        layers: list[tuple[str, nn.Module]] = []
        c_in, n_conv, n_pool, side = in_channels, 0, 0, input_size
        for item in _PLAN:
            if item == "M":
                n_pool += 1
                layers.append((f"pool{n_pool}", nn.MaxPool2d(2)))
                side //= 2
                continue
            n_conv += 1
            c_out = scale_channels(int(item), width, round_to)
            layers += [
                (f"conv{n_conv}", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)),
                (f"bn{n_conv}", nn.BatchNorm2d(c_out)),
                (f"relu{n_conv}", nn.ReLU(inplace=True)),
            ]
            c_in = c_out
        for name, module in layers:
            self.add_module(name, module)
        self._order = [name for name, _ in layers]
        hidden = scale_channels(1024, width, round_to)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(c_in * side * side, hidden)
        self.relu7 = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, num_classes)
        init_reference(self, fc_init)  # fc_init="fan_in": see common.init_linear_fan_in

    def forward(self, x: Tensor) -> Tensor:
        check_input_size(x, self.input_size, "vgg8")
        for name in self._order:
            x = getattr(self, name)(x)
        return self.fc2(self.relu7(self.fc1(self.flatten(x))))


@register_model
def vgg8(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, **cfg) -> VGG8:
    """VGG-8 (CIFAR, 3x32x32); ``width`` scales every conv and the hidden FC."""
    return VGG8(num_classes=num_classes, in_channels=in_channels, width=width, **cfg)
