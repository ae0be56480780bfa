"""One call seeds every generator a run touches, so a seed reproduces a run."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (AIHWKit draws its noise from torch's global generator)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def derive_seed(base: int, *keys: int | str) -> int:
    """A stable child seed for (base, keys...), e.g. one per Monte-Carlo chip, independent of run order."""
    import hashlib

    h = hashlib.sha256(repr((int(base),) + tuple(keys)).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF
