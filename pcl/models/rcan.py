"""RCAN (Zhang et al., 2018) with the official state_dict layout, plus its RCAB/ResidualGroup.

Why the res_scale argument is kept but unused: the official RCAB stores it and never applies it,
and the group passes 1 anyway (docs/backbones.md §4.3); accepting it keeps configuration files of
the official code usable while producing the same outputs.  HAN reuses these blocks.
"""

from __future__ import annotations

from torch import Tensor, nn

from pcl.models.registry import Backbone, register
from pcl.errors import PCLError

from pcl.models.common import (
    SRModel,
    check_positive,
    default_conv,
    make_tail,
)


class CALayer(nn.Module):
    """Channel attention: global average pool -> conv1 C->C/r -> ReLU -> conv1 -> sigmoid -> scale.

    ``conv_du`` indices 0..3 (conv, ReLU, conv, Sigmoid) are fixed by the checkpoint keys.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, padding=0, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, padding=0, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    """Residual channel attention block: ``x + CA(conv(ReLU(conv(x))))`` (no res_scale)."""

    def __init__(self, n_feats: int, reduction: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            default_conv(n_feats, n_feats, kernel_size),
            nn.ReLU(inplace=True),
            default_conv(n_feats, n_feats, kernel_size),
            CALayer(n_feats, reduction),
        )

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x)
        res += x
        return res


class ResidualGroup(nn.Module):
    """``x + conv(RCAB_B(... RCAB_1(x)))``; the group conv sits at ``body.{B}``."""

    def __init__(self, n_feats: int, reduction: int, n_resblocks: int, kernel_size: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [RCAB(n_feats, reduction, kernel_size) for _ in range(n_resblocks)]
        blocks.append(default_conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x)
        res += x
        return res


def check_rcan_sizes(model: str, n_resgroups: int, n_resblocks: int, n_feats: int, reduction: int) -> None:
    """Shared validation of the RCAN-trunk keywords (RCAN and HAN)."""
    for name, value in (
        ("n_resgroups", n_resgroups),
        ("n_resblocks", n_resblocks),
        ("n_feats", n_feats),
        ("reduction", reduction),
    ):
        check_positive(name, value, model)
    if n_feats // reduction < 1:
        raise PCLError(
            f"{model}: n_feats // reduction must be at least 1 (got n_feats={n_feats}, "
            f"reduction={reduction}); lower the reduction"
        )


class RCAN(SRModel):
    """sub_mean -> head -> G residual groups + conv (+ long skip) -> tail -> add_mean."""

    def __init__(
        self,
        scale: int = 4,
        n_colors: int = 3,
        n_resgroups: int = 10,
        n_resblocks: int = 20,
        n_feats: int = 64,
        reduction: int = 16,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
    ) -> None:
        super().__init__()
        check_rcan_sizes("rcan", n_resgroups, n_resblocks, n_feats, reduction)
        self.res_scale = res_scale  # kept for configuration parity; never applied (docs/backbones.md §4.3)
        self._setup_io("rcan", scale, n_colors, rgb_range)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, 3))
        groups: list[nn.Module] = [ResidualGroup(n_feats, reduction, n_resblocks) for _ in range(n_resgroups)]
        groups.append(default_conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*groups)
        self.tail = make_tail(scale, n_feats, n_colors)

    def forward_official(self, x: Tensor) -> Tensor:
        return self._long_skip_forward(x)


RCAN_DEFAULTS = dict(scale=4, n_colors=3, n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16, res_scale=1.0,
                     rgb_range=255.0)
register(Backbone("rcan", RCAN, RCAN_DEFAULTS, "RCAN"))
