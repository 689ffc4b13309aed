"""Display names: backbone labels and the Table II row of a (backbone, method).

Why one place: Table II, Table III's and Table V's row mappers, the audit, the check and the
figure all print a backbone as the paper does (``EDSR-L``, ``RCAN+PCL``); a second mapping would
drift.  Used to place results by name, which only the tiers that do not come from the
experiment catalog rely on (``pcl.report.placement``).
"""

from __future__ import annotations

from pcl.models.registry import backbones

BACKBONE_LABELS: dict[str, str] = {b.name: b.display for b in backbones().values()}
"""Backbone -> its name in the paper, in Table II order (from the one backbone registry)."""

BASE_METHODS: frozenset[str] = frozenset({"official", "baseline", "control"})
"""Methods shown on a backbone's plain row (official weights, our baseline, the L1-only control)."""
PCL_METHODS: frozenset[str] = frozenset({"pcl", "pcl-released"})
"""Methods shown on a backbone's ``+PCL`` row (the paper's semantics and the authors' scripts as
released: both are what the paper calls +PCL)."""
TABLE2_ROWS: dict[tuple[str, str], str] = {
    ("bicubic", "bicubic"): "Bicubic",
    **{(b, m): label for b, label in BACKBONE_LABELS.items() for m in sorted(BASE_METHODS)},
    **{(b, m): f"{label}+PCL" for b, label in BACKBONE_LABELS.items() for m in sorted(PCL_METHODS)},
}
"""(backbone, method) -> Table II row label; ``table2_label`` is the function to call."""
TABLE2_VARIANTS: frozenset[str] = frozenset({"", "released", "paper"})
"""Experiment-name suffixes that still belong on Table II; ablation variants (``cfg1-vgg``,
``alpha0.5``, ``pos-only``, ``fixed``...) belong to Tables IV-VII and are kept off Table II."""


def table2_label(backbone: str, method: str, experiment: str | None = None) -> str | None:
    """Table II row label for a result row, or ``None`` when it has no Table II row.

    ``experiment`` is optional; when given, its part after ``<backbone>-<method>`` must be one
    of ``TABLE2_VARIANTS`` so that ablation runs never land on a Table II line.
    """
    if backbone == "bicubic":
        return TABLE2_ROWS[("bicubic", "bicubic")]
    label = TABLE2_ROWS.get((backbone, method))
    if label is None:
        return None
    if experiment is not None:
        prefix = f"{backbone}-{method}"
        variant = experiment[len(prefix) + 1 :] if experiment.startswith(prefix + "-") else None
        if experiment != prefix and variant not in TABLE2_VARIANTS:
            return None
    return label
