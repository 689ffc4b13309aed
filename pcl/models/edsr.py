"""EDSR (Lim et al., 2017) with the EDSR-PyTorch state_dict layout.

Why one class for EDSR-S and EDSR-L: the official code builds both from the same class; only
n_resblocks, n_feats and res_scale differ (docs/backbones.md §2.1, 3).  Key order: sub_mean,
add_mean, head, body, tail - the order in which the official constructor registers them.
"""

from __future__ import annotations

from torch import Tensor, nn

from pcl.models.registry import Backbone, register
from pcl.models.common import (
    ResBlock,
    SRModel,
    check_positive,
    default_conv,
    make_tail,
)


class EDSR(SRModel):
    """sub_mean -> head -> body (+ long skip) -> tail -> add_mean; body = B ResBlocks + conv."""

    def __init__(
        self,
        scale: int = 4,
        n_colors: int = 3,
        n_resblocks: int = 16,
        n_feats: int = 64,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
    ) -> None:
        super().__init__()
        for name, value in (("n_resblocks", n_resblocks), ("n_feats", n_feats)):
            check_positive(name, value, "edsr")
        self._setup_io("edsr", scale, n_colors, rgb_range)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, 3))
        blocks: list[nn.Module] = [ResBlock(n_feats, 3, res_scale=res_scale) for _ in range(n_resblocks)]
        blocks.append(default_conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*blocks)
        self.tail = make_tail(scale, n_feats, n_colors)

    def forward_official(self, x: Tensor) -> Tensor:
        return self._long_skip_forward(x)


register(Backbone("edsr-s", EDSR, dict(scale=4, n_colors=3, n_resblocks=16, n_feats=64, res_scale=1.0, rgb_range=255.0),
                  "EDSR-S", aliases=("edsr", "edsr-baseline")))
register(Backbone("edsr-l", EDSR, dict(scale=4, n_colors=3, n_resblocks=32, n_feats=256, res_scale=0.1, rgb_range=255.0),
                  "EDSR-L"))
