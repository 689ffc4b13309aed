"""Converting BasicSR EDSR/RCAN checkpoints to and from the EDSR-PyTorch key layout.

Why: the harness's networks use the EDSR-PyTorch names (``head``/``body``/``tail`` with the
MeanShift layers inside the state_dict), while BasicSR names the same tensors ``conv_first``,
``residual_group``, ``conv_last`` and keeps the mean outside.  Converting the keys lets one strict
loader read both kinds of released files.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import torch
from torch import Tensor

from pcl.errors import PCLError
from pcl.models.common import analytic_mean_shift
from pcl.models.state_dict_files import LIST_LIMIT, unwrap_state_dict


def is_basicsr_format(state_dict: Mapping[str, Tensor]) -> bool:
    """BasicSR EDSR/RCAN checkpoints start with ``conv_first``; EDSR-PyTorch ones with ``head.0``."""
    return "conv_first.weight" in state_dict


def _mean_shift_entries(rgb_range: float) -> dict[str, Tensor]:
    sub_w, sub_b = analytic_mean_shift(rgb_range, sign=-1)
    add_w, add_b = analytic_mean_shift(rgb_range, sign=1)
    return {"sub_mean.weight": sub_w, "sub_mean.bias": sub_b, "add_mean.weight": add_w, "add_mean.bias": add_b}


def _count_indices(keys: list[str], pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    if found and found != set(range(len(found))):
        raise PCLError(f"checkpoint block indices {sorted(found)} are not contiguous from 0; the file is damaged")
    return len(found)


def _rename_into(
    out: dict[str, Tensor], state_dict: Mapping[str, Tensor], rules: list[tuple[str, str]], skip: Collection[str] = ()
) -> list[str]:
    """Add every tensor of ``state_dict`` to ``out`` under the name its first matching rule gives.

    ``rules`` are (regex, replacement) pairs tried in order; keys in ``skip`` are left out.
    Returns the keys no rule matched, in their order, for the caller's error message.
    """
    unknown: list[str] = []
    for key, value in state_dict.items():
        if key in skip:
            continue
        for pattern, replacement in rules:
            new_key, hits = re.subn(pattern, replacement, key)
            if hits:
                out[new_key] = value
                break
        else:
            unknown.append(key)
    return unknown


def from_basicsr(state_dict: Mapping[str, Tensor], *, rgb_range: float = 255.0) -> dict[str, Tensor]:
    """Convert BasicSR EDSR/RCAN keys to the EDSR-PyTorch layout and add analytic MeanShift tensors.

    BasicSR keeps the mean outside the state_dict, so ``sub_mean``/``add_mean`` are synthesised
    (identity weight, -/+ rgb_range * DIV2K mean), which matches BasicSR with img_range 255.
    """
    keys = list(state_dict)
    is_rcan = any(".residual_group." in k for k in keys)
    out: dict[str, Tensor] = {} if "sub_mean.weight" in state_dict else _mean_shift_entries(rgb_range)
    if is_rcan:
        n_groups = _count_indices(keys, r"^body\.(\d+)\.residual_group\.")
        n_blocks = _count_indices(keys, r"^body\.0\.residual_group\.(\d+)\.")
        rules = [
            (r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.([02])\.", r"body.\1.body.\2.body.\3."),
            (r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.1\.", r"body.\1.body.\2.body.3.conv_du.0."),
            (r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.3\.", r"body.\1.body.\2.body.3.conv_du.2."),
            (r"^body\.(\d+)\.conv\.", rf"body.\1.body.{n_blocks}."),
            (r"^conv_after_body\.", f"body.{n_groups}."),
        ]
    else:
        n_blocks = _count_indices(keys, r"^body\.(\d+)\.conv1\.")
        rules = [
            (r"^body\.(\d+)\.conv1\.", r"body.\1.body.0."),
            (r"^body\.(\d+)\.conv2\.", r"body.\1.body.2."),
            (r"^conv_after_body\.", f"body.{n_blocks}."),
        ]
    rules += [
        (r"^conv_first\.", "head.0."),
        (r"^upsample\.(\d+)\.", r"tail.0.\1."),
        (r"^conv_last\.", "tail.1."),
        (r"^(sub_mean|add_mean)\.", r"\1."),
    ]
    unknown = _rename_into(out, state_dict, rules)
    if unknown:
        raise PCLError(
            f"BasicSR checkpoint has keys that are neither EDSR nor RCAN keys: {unknown[:LIST_LIMIT]}; "
            "only BasicSR EDSR and RCAN checkpoints can be converted"
        )
    return out


def to_basicsr(state_dict: Mapping[str, Tensor], *, rgb_range: float = 255.0) -> dict[str, Tensor]:
    """Convert an EDSR-PyTorch-format EDSR/RCAN state_dict to BasicSR keys (MeanShift dropped).

    Dropping the MeanShift tensors is lossless only when they hold the analytic values for
    ``rgb_range`` (released RCAN weights may not, docs/backbones.md §1.2), so that is checked first.
    """
    expected = _mean_shift_entries(rgb_range)
    for key, value in expected.items():
        if key in state_dict and not torch.allclose(state_dict[key].float().cpu(), value, rtol=1e-6, atol=1e-5):
            raise PCLError(
                f"cannot convert to BasicSR: {key} holds non-analytic values {state_dict[key].flatten().tolist()} "
                f"(expected {value.flatten().tolist()} for rgb_range {rgb_range}); BasicSR has no place for them"
            )
    keys = list(state_dict)
    is_rcan = any(re.match(r"^body\.\d+\.body\.\d+\.body\.3\.conv_du\.", k) for k in keys)
    if is_rcan:
        n_groups = _count_indices(keys, r"^body\.(\d+)\.body\.\d+\.body\.0\.weight$")
        n_blocks = _count_indices(keys, r"^body\.0\.body\.(\d+)\.body\.0\.weight$")
        rules = [
            (r"^body\.(\d+)\.body\.(\d+)\.body\.([02])\.", r"body.\1.residual_group.\2.rcab.\3."),
            (r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.0\.", r"body.\1.residual_group.\2.rcab.3.attention.1."),
            (r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.2\.", r"body.\1.residual_group.\2.rcab.3.attention.3."),
            (rf"^body\.(\d+)\.body\.{n_blocks}\.", r"body.\1.conv."),
            (rf"^body\.{n_groups}\.", "conv_after_body."),
        ]
    else:
        n_blocks = _count_indices(keys, r"^body\.(\d+)\.body\.0\.weight$")
        rules = [
            (r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
            (r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2."),
            (rf"^body\.{n_blocks}\.", "conv_after_body."),
        ]
    rules += [(r"^head\.0\.", "conv_first."), (r"^tail\.0\.(\d+)\.", r"upsample.\1."), (r"^tail\.1\.", "conv_last.")]
    out: dict[str, Tensor] = {}
    unknown = _rename_into(out, state_dict, rules, skip=expected.keys())
    if unknown:
        raise PCLError(f"cannot convert to BasicSR: keys {unknown[:LIST_LIMIT]} are not EDSR/RCAN keys")
    return out


def normalise_state_dict(obj: Any, *, source: str = "checkpoint") -> dict[str, Tensor]:
    """Unwrap a loaded object and convert BasicSR key names when it is in BasicSR format."""
    state_dict = unwrap_state_dict(obj, source=source)
    if is_basicsr_format(state_dict):
        state_dict = from_basicsr(state_dict)
    return state_dict
