"""CIFAR crop + flip on whole batches, as tensor ops on the batch's own device.

Why: the per-item torchvision path (``train_augmentation``) runs Python per image; on one CPU thread that
costs about as much as a small network's step, and on a GPU it would starve it. Here one batch is padded
once and every image gets its own crop offset by one gather, and its flip by one ``where``. Draws come from
a ``torch.Generator`` on the batch's device seeded by ``seed``, so a run is reproducible and independent
of torch's global RNG.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tsb_aihw.errors import ConfigError


class BatchCropFlip:
    """``(x, y) -> (x', y)``: random ``padding``-pixel crop (reflect-padded) and, if ``flip``, a horizontal
    flip with probability 0.5, per image. ``x`` is a float batch ``[N, C, H, W]`` (already normalised);
    labels pass through unchanged. ``reset()`` restarts the random stream from ``seed``."""

    def __init__(self, padding: int = 4, flip: bool = True, seed: int = 0) -> None:
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ConfigError(f"crop padding must be an integer >= 0, got {padding!r}")
        self.padding = padding
        self.flip = bool(flip)
        self.seed = int(seed)
        self._gen: torch.Generator | None = None

    def reset(self) -> None:
        self._gen = None

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device).manual_seed(self.seed)
        return self._gen

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4:
            raise ConfigError(f"batch augmentation needs image batches [N, C, H, W], got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        gen = self._generator(x.device)
        p = self.padding
        if p > 0:
            if p >= min(h, w):
                raise ConfigError(f"crop padding {p} must be smaller than the image size {h}x{w}")
            padded = F.pad(x, (p, p, p, p), mode="reflect")
            dy = torch.randint(0, 2 * p + 1, (n,), generator=gen, device=x.device)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=gen, device=x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [N, H, 1]
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [N, 1, W]
            batch = torch.arange(n, device=x.device)[:, None, None]
            x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # [N, C, H, W]
        if self.flip:
            mask = torch.rand(n, generator=gen, device=x.device) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(3), x)
        return x.contiguous(), y
