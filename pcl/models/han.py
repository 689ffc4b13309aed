"""HAN (Niu et al., 2020): the RCAN trunk plus layer attention (LAM) and channel-spatial
attention (CSAM), with the official state_dict layout (docs/backbones.md §5).

Why n_resgroups must be 10: ``last_conv`` fuses the 10 group outputs and the body-final conv
output, and the official code hard-wires its input to 11 * C channels.  Any other group count
cannot load a HAN checkpoint, so it is refused up front.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pcl.models.registry import Backbone, register
from pcl.errors import PCLError
from pcl.models.common import SRModel, default_conv, make_tail
from pcl.models.rcan import RCAN_DEFAULTS, ResidualGroup, check_rcan_sizes

#: The only group count the official HAN supports (last_conv takes 11 = 10 + 1 layers).
HAN_RESGROUPS = 10


class LAM(nn.Module):
    """Layer attention over the stacked layer outputs S (N, K, C, H, W).

    E = S S^T over flattened layers; A = softmax(rowmax(E) - E); out = gamma * (A S) + S,
    reshaped to (N, K*C, H, W).  gamma starts at 0, so at initialisation this is the identity.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        n, k, c, h, w = x.size()
        query = x.reshape(n, k, -1)  # reshape: under channels_last the input is not contiguous
        key = x.reshape(n, k, -1).permute(0, 2, 1)
        energy = torch.bmm(query, key)
        energy_new = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
        attention = self.softmax(energy_new)
        out = torch.bmm(attention, x.reshape(n, k, -1)).view(n, k, c, h, w)
        out = self.gamma * out + x
        return out.reshape(n, -1, h, w)


class CSAM(nn.Module):
    """Channel-spatial attention: treat the map as a 1-channel volume, 3-D conv, sigmoid.

    out = x * (gamma * sigmoid(conv3d(x))) + x; gamma starts at 0 (identity at initialisation).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 3, 1, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.size()
        mask = self.sigmoid(self.conv(x.unsqueeze(1)))
        mask = (self.gamma * mask).reshape(n, -1, h, w)
        return x * mask + x


class HAN(SRModel):
    """RCAN trunk whose 11 body outputs feed LAM (newest first) and whose last output feeds CSAM."""

    def __init__(
        self,
        scale: int = 4,
        n_colors: int = 3,
        n_resgroups: int = HAN_RESGROUPS,
        n_resblocks: int = 20,
        n_feats: int = 64,
        reduction: int = 16,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
    ) -> None:
        super().__init__()
        if n_resgroups != HAN_RESGROUPS:
            raise PCLError(
                f"han: n_resgroups must be {HAN_RESGROUPS} (last_conv of the official HAN fuses exactly "
                f"{HAN_RESGROUPS + 1} layers), got {n_resgroups!r}; shrink n_resblocks or n_feats instead"
            )
        check_rcan_sizes("han", n_resgroups, n_resblocks, n_feats, reduction)
        self.res_scale = res_scale  # never applied, as in the official code (docs/backbones.md §4.3)
        self._setup_io("han", scale, n_colors, rgb_range)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, 3))
        groups: list[nn.Module] = [ResidualGroup(n_feats, reduction, n_resblocks) for _ in range(n_resgroups)]
        groups.append(default_conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*groups)
        self.csa = CSAM()
        self.la = LAM()
        self.last_conv = nn.Conv2d(n_feats * (HAN_RESGROUPS + 1), n_feats, 3, 1, 1)
        self.last = nn.Conv2d(n_feats * 2, n_feats, 3, 1, 1)
        self.tail = make_tail(scale, n_feats, n_colors)

    def forward_official(self, x: Tensor) -> Tensor:
        x = self.sub_mean(x)
        x = self.head(x)
        outputs: list[Tensor] = []
        res = x
        for layer in self.body:
            res = layer(res)
            outputs.append(res)
        # Newest first: channels [0:C] of last_conv belong to the body-final conv (docs/backbones.md §5.1).
        stack = torch.stack(outputs[::-1], dim=1)
        fused = self.last_conv(self.la(stack))
        spatial = self.csa(res)
        res = self.last(torch.cat([spatial, fused], 1))
        res += x
        x = self.tail(res)
        return self.add_mean(x)


register(Backbone("han", HAN, dict(RCAN_DEFAULTS), "HAN"))
