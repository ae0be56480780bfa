"""The Tiny Shared Block and the parameter-free sites that apply it inside a backbone."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tsb_aihw.errors import ConfigError, TSBError


class TinySharedBlock(nn.Module):
    """One k->k 1x1 conv (``self.conv``, no bias): the only TSB parameter, shared by every insertion site.

    A C-channel feature map (C = g*k) is viewed as g groups of k channels and the same k->k kernel mixes
    each group (a grouped conv with tied weights), so one tiny tile serves layers of any width that k
    divides. 2-D features (N, F) are treated as (N, F, 1, 1). ``residual=True`` computes ``x + conv(x)``
    with a zero-initialised kernel, so the block is exactly the identity until trained; ``residual=False``
    computes ``conv(x)`` with an identity-initialised kernel.
    """

    def __init__(self, k: int, residual: bool = True) -> None:
        super().__init__()
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"TSB size k must be a positive int, got {k!r}")
        self.k = k
        self.residual = bool(residual)
        self.conv = nn.Conv2d(k, k, 1, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Zero kernel (residual) or identity kernel (plain): the block starts as the identity map."""
        if self.residual:
            self.conv.weight.zero_()
        else:
            self.conv.weight.copy_(torch.eye(self.k).view(self.k, self.k, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return self.forward(x.reshape(x.shape[0], x.shape[1], 1, 1)).reshape(x.shape)
        if x.dim() != 4:
            raise TSBError(f"TinySharedBlock takes (N, C, H, W) or (N, F) inputs, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        if c % self.k:
            raise ConfigError(
                f"a {c}-channel feature map cannot be split into k={self.k} groups; insert the block only "
                f"where k divides the width (insert_tsb skips such sites) or pick k dividing {c}"
            )
        mixed = self.conv(x.reshape(n * (c // self.k), self.k, h, w)).reshape(n, c, h, w)
        return x + mixed if self.residual else mixed

    def extra_repr(self) -> str:
        return f"k={self.k}, residual={self.residual}"


class TSBSite(nn.Module):
    """Parameter-free marker that applies the shared block to the output of the module named ``target``.

    The block is held *unregistered* (``object.__setattr__``): a module registered under two names stays
    digital after AIHWKit conversion (docs/notes/aihwkit-1.1-facts.md §4), so only ``model.tsb`` owns it and
    ``bind_sites`` re-attaches every site (and its forward hook) after conversion or deepcopy.
    """

    def __init__(self, target: str, width: int, kind: str) -> None:
        super().__init__()
        self.target = target
        self.width = width
        self.kind = kind
        object.__setattr__(self, "_block", None)

    def bind(self, block: nn.Module) -> None:
        object.__setattr__(self, "_block", block)

    @property
    def block(self) -> nn.Module:
        block = self.__dict__.get("_block")
        if block is None:
            raise TSBError(f"TSB site {self.target!r} is not bound to a block; call bind_sites(model)")
        return block

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)

    def hook(self, module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
        """Forward hook installed on the target module: replaces its output by the block's output."""
        return self(output)

    def extra_repr(self) -> str:
        return f"target={self.target!r}, width={self.width}, kind={self.kind!r}"
