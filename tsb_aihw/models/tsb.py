"""The Tiny Shared Block and the parameter-free sites that apply it inside a backbone."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tsb_aihw.errors import ConfigError, TSBError


def block_weight_count(k: int, bias: bool = False) -> int:
    """Weights one shared block puts on its tile: k*k, plus k for the bias column (verified like the rest)."""
    return k * k + (k if bias else 0)


class TinySharedBlock(nn.Module):
    """One k->k 1x1 conv (``self.conv``, no conv bias): the only TSB parameter, shared by every insertion site.

    A C-channel feature map (C = g*k) is viewed as g groups of k channels and the same k->k kernel mixes
    each group (a grouped conv with tied weights), so one tiny tile serves layers of any width that k
    divides. 2-D features (N, F) are treated as (N, F, 1, 1). ``residual=True`` computes ``x + conv(x)``
    with a zero-initialised kernel, so the block is exactly the identity until trained; ``residual=False``
    computes ``conv(x)`` with an identity-initialised kernel.

    ``bias=True`` adds a per-output bias (tied across groups like the kernel) as one more input column of the
    same kernel, fed a constant 1: ``self.conv`` is then (k+1)->k. Why a column and not ``nn.Conv2d(bias=True)``:
    AIHWKit keeps layer biases digital (the presets set ``digital_bias``), so only a column on the tile is
    programmed, write-verified, counted as a verified weight and priced like the block's other weights.
    """

    def __init__(self, k: int, residual: bool = True, bias: bool = False) -> None:
        super().__init__()
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"TSB size k must be a positive int, got {k!r}")
        self.k = k
        self.residual = bool(residual)
        self.has_bias = bool(bias)
        self.conv = nn.Conv2d(k + int(self.has_bias), k, 1, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Zero kernel (residual) or identity kernel (plain), zero bias: the block starts as the identity map."""
        self.conv.weight.zero_()
        if not self.residual:
            self.conv.weight[:, : self.k].copy_(torch.eye(self.k).view(self.k, self.k, 1, 1))

    @property
    def bias_weights(self) -> Tensor | None:
        """The bias (a view of the kernel's last column), or None without one."""
        return self.conv.weight[:, self.k, 0, 0] if self.has_bias else None

    @property
    def weight_count(self) -> int:
        return block_weight_count(self.k, self.has_bias)

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
        groups = x.reshape(n * (c // self.k), self.k, h, w)
        if self.has_bias:  # the constant-1 input that the bias column multiplies
            groups = torch.cat([groups, groups.new_ones(groups.shape[0], 1, h, w)], dim=1)
        mixed = self.conv(groups).reshape(n, c, h, w)
        return x + mixed if self.residual else mixed

    def extra_repr(self) -> str:
        return f"k={self.k}, residual={self.residual}" + (", bias=True" if self.has_bias else "")


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
