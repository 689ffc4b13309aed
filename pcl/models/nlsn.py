"""NLSN (Mei et al., 2021): EDSR body interleaved with non-local sparse attention (NLSA).

Exactness notes (docs/backbones.md §6, 11.5): every NLSA forward draws its random rotations with
one ``torch.randn`` call of shape (1, C/4, n_hashes, buckets/2) on the feature device and dtype,
in body order; the bucket sort is torch's default (unstable) sort; sequences that do not fill the
last chunk are padded by copying their last sorted rows; each chunk attends to (own, previous,
next) chunks; keys are L2-normalised with eps 5e-5.  The tensor operations follow the official
sequence one for one, because NLSN outputs depend on tie order and layout at the float level.
Seed the global torch RNG before every evaluation to make outputs repeatable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcl.models.registry import Backbone, register
from pcl.errors import PCLError
from pcl.models.common import (
    ResBlock,
    SRModel,
    check_positive,
    default_conv,
    make_tail,
)

#: NLSA embedding reduction, hard-coded to 4 in the official NLSN (docs/backbones.md §2.1).
NLSA_REDUCTION = 4
#: Upper bound on the number of hash buckets (official constant).
MAX_BUCKETS = 128


def _gather_rows(values: Tensor, indices: Tensor) -> Tensor:
    """Batched row gather: ``values[n, indices[n, i], :]`` (the official batched_index_select)."""
    return values.gather(1, indices[:, :, None].expand(-1, -1, values.shape[-1]))


def _with_neighbours(x: Tensor) -> Tensor:
    """Concatenate each chunk with its previous and next chunk (cyclic): (own, previous, next)."""
    previous = torch.cat([x[:, :, -1:, ...], x[:, :, :-1, ...]], dim=2)
    following = torch.cat([x[:, :, 1:, ...], x[:, :, :1, ...]], dim=2)
    return torch.cat([x, previous, following], dim=3)


def bucket_count(length: int, chunk_size: int) -> int:
    """Number of hash buckets: L // chunk bumped to even, capped at 128 (docs/backbones.md §6.2 step 2)."""
    chunks = length // chunk_size
    return min(chunks + chunks % 2, MAX_BUCKETS)


class NonLocalSparseAttention(nn.Module):
    """One NLSA module (keys ``conv_match.0.*``, ``conv_assembly.0.*``)."""

    def __init__(
        self,
        channels: int,
        n_hashes: int = 4,
        chunk_size: int = 144,
        reduction: int = NLSA_REDUCTION,
        res_scale: float = 1.0,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.n_hashes = n_hashes
        self.reduction = reduction
        self.res_scale = res_scale
        # BasicBlock wrappers in the official code: a Sequential holding only the conv.
        self.conv_match = nn.Sequential(default_conv(channels, channels // reduction, kernel_size))
        self.conv_assembly = nn.Sequential(default_conv(channels, channels, 1))

    def hash_codes(self, n_buckets: int, x: Tensor) -> Tensor:
        """Random-rotation LSH codes of x (N, L, c) -> (N, n_hashes * L), round offsets added."""
        n = x.shape[0]
        device = x.device
        rotations = torch.randn((1, x.shape[-1], self.n_hashes, n_buckets // 2), dtype=x.dtype, device=device)
        rotations = rotations.expand(n, -1, -1, -1)
        rotated = torch.einsum("btf,bfhi->bhti", x, rotations)
        rotated = torch.cat([rotated, -rotated], dim=-1)
        codes = torch.argmax(rotated, dim=-1)
        offsets = torch.arange(self.n_hashes, device=device)
        offsets = torch.reshape(offsets * n_buckets, (1, -1, 1))
        return torch.reshape(codes + offsets, (n, -1))

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        length = h * w
        if length < self.chunk_size:
            raise PCLError(
                f"nlsn: the LR input is {h}x{w} = {length} pixels but non-local sparse attention needs "
                f"H*W >= chunk_size ({self.chunk_size}); use a larger input (e.g. at least 12x12) or a "
                "smaller chunk_size"
            )
        embed = self.conv_match(x).view(n, -1, length).contiguous().permute(0, 2, 1)
        values = self.conv_assembly(x).view(n, -1, length).contiguous().permute(0, 2, 1)
        c = embed.shape[-1]
        cv = values.shape[-1]
        n_buckets = bucket_count(length, self.chunk_size)

        codes = self.hash_codes(n_buckets, embed).detach()
        _, indices = codes.sort(dim=-1)
        _, undo_sort = indices.sort(dim=-1)
        mod_indices = indices % length
        embed_sorted = _gather_rows(embed, mod_indices)
        values_sorted = _gather_rows(values, mod_indices)

        padding = self.chunk_size - length % self.chunk_size if length % self.chunk_size != 0 else 0
        q = torch.reshape(embed_sorted, (n, self.n_hashes, -1, c))
        v = torch.reshape(values_sorted, (n, self.n_hashes, -1, cv))
        if padding:
            q = torch.cat([q, q[:, :, -padding:, :].clone()], dim=2)
            v = torch.cat([v, v[:, :, -padding:, :].clone()], dim=2)
        q = torch.reshape(q, (n, self.n_hashes, -1, self.chunk_size, c))
        v = torch.reshape(v, (n, self.n_hashes, -1, self.chunk_size, cv))

        keys = _with_neighbours(F.normalize(q, p=2, dim=-1, eps=5e-5))
        v = _with_neighbours(v)
        raw_score = torch.einsum("bhkie,bhkje->bhkij", q, keys)
        bucket_score = torch.logsumexp(raw_score, dim=-1, keepdim=True)
        score = torch.exp(raw_score - bucket_score)
        bucket_score = torch.reshape(bucket_score, [n, self.n_hashes, -1])

        out = torch.einsum("bukij,bukje->bukie", score, v)
        out = torch.reshape(out, (n, self.n_hashes, -1, cv))
        if padding:
            out = out[:, :, :-padding, :].clone()
            bucket_score = bucket_score[:, :, :-padding].clone()

        out = _gather_rows(torch.reshape(out, (n, -1, cv)), undo_sort)
        bucket_score = torch.reshape(bucket_score, (n, -1)).gather(1, undo_sort)
        out = torch.reshape(out, (n, self.n_hashes, length, cv))
        probs = F.softmax(torch.reshape(bucket_score, (n, self.n_hashes, length, 1)), dim=1)
        out = torch.sum(out * probs, dim=1)
        return out.permute(0, 2, 1).view(n, -1, h, w).contiguous() * self.res_scale + x


def nlsa_positions(n_resblocks: int) -> list[int]:
    """Body indices of the NLSA modules: 0, then one after every 8th ResBlock (docs/backbones.md §6.1)."""
    positions = [0]
    index = 0
    for i in range(n_resblocks):
        index += 1
        if (i + 1) % 8 == 0:
            index += 1
            positions.append(index)
    return positions


class NLSN(SRModel):
    """sub_mean -> head -> [NLSA, 8 x (ResBlock), NLSA, ..., conv] (+ long skip) -> tail -> add_mean."""

    def __init__(
        self,
        scale: int = 4,
        n_colors: int = 3,
        n_resblocks: int = 32,
        n_feats: int = 256,
        res_scale: float = 0.1,
        rgb_range: float = 1.0,
        n_hashes: int = 4,
        chunk_size: int = 144,
    ) -> None:
        super().__init__()
        for name, value in (
            ("n_resblocks", n_resblocks),
            ("n_feats", n_feats),
            ("n_hashes", n_hashes),
            ("chunk_size", chunk_size),
        ):
            check_positive(name, value, "nlsn")
        if n_feats // NLSA_REDUCTION < 1:
            raise PCLError(f"nlsn: n_feats must be at least {NLSA_REDUCTION} (attention reduction), got {n_feats}")
        self.chunk_size = chunk_size

        def attention() -> NonLocalSparseAttention:
            return NonLocalSparseAttention(
                n_feats, n_hashes=n_hashes, chunk_size=chunk_size, reduction=NLSA_REDUCTION, res_scale=res_scale
            )

        self._setup_io("nlsn", scale, n_colors, rgb_range)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, 3))
        body: list[nn.Module] = [attention()]
        for i in range(n_resblocks):
            body.append(ResBlock(n_feats, 3, res_scale=res_scale))
            if (i + 1) % 8 == 0:
                body.append(attention())
        body.append(default_conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*body)
        self.tail = make_tail(scale, n_feats, n_colors)

    def forward_official(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        if h * w < self.chunk_size:
            raise PCLError(
                f"nlsn: LR input {h}x{w} has {h * w} pixels, fewer than chunk_size {self.chunk_size}; "
                "non-local sparse attention needs H*W >= chunk_size (e.g. at least 12x12 at the paper setting)"
            )
        return self._long_skip_forward(x)


register(Backbone("nlsn", NLSN, dict(scale=4, n_colors=3, n_resblocks=32, n_feats=256, res_scale=0.1, rgb_range=1.0,
                                     n_hashes=4, chunk_size=144), "NLSN"))
