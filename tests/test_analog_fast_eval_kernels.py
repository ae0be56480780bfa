"""The fast path's rewritten kernels give the textbook ops' floats bit for bit (issue 36 item 3).

They replace ops whose results are exact elementwise (one multiply per value, a max), so any other result
would change chip evaluations: ``torch.equal``, not a tolerance. Whole forwards before/after a change are
compared by ``benchmarks/fast_eval_identity.py``.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tsb_aihw.analog.fast_eval import _channel_max, _ConvGeom

GEOMETRIES = [  # kernel, stride, padding, dilation
    ((3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 3), (2, 2), (1, 1), (1, 1)),
    ((3, 3), (2, 2), (2, 2), (2, 2)),
    ((2, 3), (1, 2), (0, 1), (1, 1)),
    ((1, 1), (2, 2), (0, 0), (1, 1)),
    ((1, 1), (1, 1), (0, 0), (1, 1)),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("size", [4, 9, 16, 21])
def test_unfold_scaled_is_unfold_times_scale(geometry, size):
    geom = _ConvGeom(*geometry)
    g = torch.Generator().manual_seed(size)
    x = torch.randn(3, 9, size, size, generator=g)[:, 2:7]  # a channel slice, as the input splits take it
    ho, wo = geom.out_hw(size, size)
    unfolded = F.unfold(x, geom.kernel, geom.dilation, geom.padding, geom.stride)
    scale = torch.rand(3, ho * wo, generator=g)
    assert torch.equal(geom.unfold_scaled(x, scale, ho, wo), unfolded * scale.unsqueeze(1))
    assert torch.equal(geom.unfold_scaled(x, 0.37, ho, wo), unfolded * 0.37)


@pytest.mark.parametrize("shape", [(5, 7, 6, 6), (4, 16, 4, 4), (3, 1, 8, 8)])
def test_channel_max_is_the_max_over_channels(shape):
    v = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    low, high = torch.aminmax(v, dim=1)
    assert torch.equal(_channel_max(v, True), torch.maximum(high, -low))
    assert torch.equal(_channel_max(v, False), high)
