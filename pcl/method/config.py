"""Validated settings of the PCL method (samples, embedding, contrastive loss, embedding training).

Why a flat dataclass with presets: experiment configurations come from YAML, and the two
behaviours the harness offers (``paper`` = the method as P-J describes it, ``released`` = the
authors' scripts, docs/method.md §0-§5) differ in a dozen coupled settings.  A preset fixes all of
them at once; single keys override it.  Every problem (unknown semantics, a layer index the
embedding does not have, K_N = 0, tau <= 0, a misspelt key) is a ``PCLError`` raised by
``validate()`` / ``from_dict()`` *before* any training starts, naming the offending key.

Presets (see docs/method_choices.md for the reasoning behind each paper-mode choice):

``paper``         GT + 4 sharpened positives (factor U[1.5, 3.0), per image), 4 isotropic blurred
                  negatives (size U{3,..,11}, sigma U[0.3, 1.5], per image), no LR negative, Haar
                  embedding, layers 0-3, InfoNCE tau 1, alpha 0.1, gradient reaches the SR net,
                  features computed with the embedding of the previous step.
``released``      the RCAN script as its author meant it (docs/method.md §1, §3.2, §4.2): GT + 3 sharpened
                  (U[0.5, 3.0) per image), LR(bicubic, align_corners) + 3 anisotropic blurred
                  (one kernel per batch), layer 4, InfoNCE, alpha 5, R = 255, contrastive D
                  training, no gradient to the SR net.
``released-rcan`` what the RCAN script actually ran: as ``released`` but GT is the only positive
                  (line-continuation bug, docs/method.md §1.1).
``released-nlsn`` the NLSN script: GT + 3 sharpened, cosine-difference loss, alpha 3, R = 1, plain
                  D training (HR vs SR).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from pcl.errors import PCLError

SEMANTICS: tuple[str, ...] = ("paper", "released")
EMBEDDINGS: tuple[str, ...] = ("haar", "rgb", "fft", "vgg")
LOSS_TYPES: tuple[str, ...] = ("infonce", "cosine")
WARMUP_MODES: tuple[str, ...] = ("freeze", "term_off")
#: Number of feature taps per embedding kind (EmbeddingNet blocks 0-7; VGG relu1_1..relu5_1).
N_LAYERS: dict[str, int] = {"haar": 8, "rgb": 8, "fft": 8, "vgg": 5}


@dataclass(frozen=True)
class MethodConfig:
    """All settings of the PCL method; ``from_dict`` / ``preset`` build it, ``validate`` checks it.

    Sample generation (docs/method.md §1):
      num_positives      K_P sharpened copies of the GT (0 allowed when the GT is a positive).
      gt_positive        the GT itself is positive 0 (paper Eq. 5 and code).
      sharpen_range      [lo, hi) of the sharpening factor (PIL blend, docs/method.md §1.2).
      num_negatives      K_N blurred copies of the GT (>= 0; 0 only with the LR negative, the
                         "no generated samples" ablations of Tables IV/VI).
      lr_negative        the bicubic-upsampled LR input is negative 0 (code, docs/method.md §1.4).
      blur_sizes         odd kernel sizes drawn uniformly.
      blur_sigma_range   [lo, hi) of sigma (uniform).
      blur_isotropic     one sigma and one size for both axes (paper) vs independent (code).
      blur_per_image     a new kernel per image (paper choice) vs one per negative index per batch (code).
      quantize           round sharpened / blurred samples to the 8-bit grid (code, docs/method.md §1.1).
    Embedding (docs/method.md §2):
      embedding          'haar' (H+D), 'rgb' (D), 'fft' (F+D) or 'vgg' (VGG-19, frozen ImageNet).
      layers             feature indices used by the contrastive term.
      pre_activation     features before LeakyReLU (what ``--before_relu`` meant; default post).
      vgg_normalize      ImageNet mean/std normalisation in front of VGG-19.
      rgb_range          R: images (in [0, 1]) are multiplied by R before the embedding (255 for
                         the RCAN script; BN makes the trunk nearly scale invariant, VGG is not).
    Contrastive term (docs/method.md §4):
      loss_type          'infonce' (Eq. 8) or 'cosine' (NLSN script's difference of cosines).
      tau                InfoNCE temperature (code: 1).
      weight             alpha, the weight of the term in the SR loss.
      fuse_sr            embed SR, positives and negatives in one call also in paper semantics
                         (costs a backward through every sample; see docs/method_choices.md).
    Embedding training (docs/method.md §3):
      contrastive_d      real += sharpened positives, fake += blurred negatives (``--contras_D_train``).
      d_lr               Adam lr of the embedding; None = the SR network's lr (code).
      d_betas, d_eps     Adam hyper-parameters (code: option.py defaults).
      update_first       update E_D on the current batch before embedding (code) vs embed with the
                         previous step's E_D, then update (paper).
    Embedding warm-up (docs/method_choices.md, "Weight of the term"; not in the paper nor the code):
      embedding_warmup   for the first N iterations of a run only the embedding trains (0 = none,
                         the paper's and the code's behaviour).
      warmup_mode        'freeze': the SR network is not updated during the warm-up (default);
                         'term_off': it trains on L1 alone while the embedding trains.
    """

    semantics: str = "paper"
    num_positives: int = 4
    gt_positive: bool = True
    sharpen_range: tuple[float, float] = (1.5, 3.0)
    num_negatives: int = 4
    lr_negative: bool = False
    blur_sizes: tuple[int, ...] = (3, 5, 7, 9, 11)
    blur_sigma_range: tuple[float, float] = (0.3, 1.5)
    blur_isotropic: bool = True
    blur_per_image: bool = True
    quantize: bool = True
    embedding: str = "haar"
    layers: tuple[int, ...] = (0, 1, 2, 3)
    pre_activation: bool = False
    vgg_normalize: bool = True
    rgb_range: float = 1.0
    loss_type: str = "infonce"
    tau: float = 1.0
    weight: float = 0.1
    fuse_sr: bool = False
    contrastive_d: bool = False
    d_lr: float | None = None
    d_betas: tuple[float, float] = (0.9, 0.999)
    d_eps: float = 1e-8
    update_first: bool = False
    embedding_warmup: int = 0
    warmup_mode: str = "freeze"

    # ------------------------------------------------------------------ construction

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "MethodConfig":
        """The named preset (``paper``, ``released``, ``released-rcan``, ``released-nlsn``) with overrides."""
        key = str(name).strip().lower().replace("_", "-")
        if key not in PRESETS:
            raise PCLError(f"method config: unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[key], **overrides})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "MethodConfig":
        """Build and validate from a mapping (YAML).

        ``preset`` (optional) selects the starting values; otherwise the preset named by
        ``semantics`` (default ``paper``).  Unknown keys and ill-typed values raise PCLError naming the key.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise PCLError(f"method config: expected a mapping of settings, got {type(data).__name__}")
        data = dict(data)
        if "preset" in data:
            preset_name = data.pop("preset")
            key = str(preset_name).strip().lower().replace("_", "-")
            if key not in PRESETS:
                raise PCLError(f"method config: unknown preset {preset_name!r}; valid presets: {', '.join(PRESETS)}")
        else:
            semantics = data.get("semantics", "paper")
            key = str(semantics).strip().lower()
            if key not in SEMANTICS:
                raise PCLError(f"method config: unknown semantics {semantics!r}; valid values: {', '.join(SEMANTICS)}")
        merged = {**PRESETS[key], **data}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - names)
        if unknown:
            raise PCLError(
                f"method config: unknown key {unknown[0]!r}; valid keys: preset, {', '.join(sorted(names))}"
            )
        values = {name: _coerce(name, value) for name, value in merged.items()}
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists for tuples) for config.yaml / provenance."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def replace(self, **changes: Any) -> "MethodConfig":
        """A validated copy with some settings changed."""
        config = replace(self, **{k: _coerce(k, v) for k, v in changes.items()})
        config.validate()
        return config

    # ------------------------------------------------------------------ derived values

    @property
    def total_positives(self) -> int:
        """|P| including the GT."""
        return int(self.gt_positive) + self.num_positives

    @property
    def total_negatives(self) -> int:
        """|N| including the LR input."""
        return int(self.lr_negative) + self.num_negatives

    @property
    def input_kind(self) -> str:
        """The embedding input actually used: released F+D is plain D (docs/method.md §2.1, §9 item 13)."""
        if self.embedding == "fft" and self.semantics == "released":
            return "rgb"
        return self.embedding

    @property
    def max_blur_size(self) -> int:
        return max(self.blur_sizes)

    # ------------------------------------------------------------------ validation

    def validate(self) -> "MethodConfig":
        """Raise PCLError naming the first bad setting; return self when all are valid."""
        _choice("semantics", self.semantics, SEMANTICS)
        _choice("embedding", self.embedding, EMBEDDINGS)
        _choice("loss_type", self.loss_type, LOSS_TYPES)
        _choice("warmup_mode", self.warmup_mode, WARMUP_MODES)
        if self.embedding_warmup < 0:
            raise PCLError(f"method config: embedding_warmup must be an integer >= 0 (iterations; 0 = no warm-up), "
                           f"got {self.embedding_warmup}")
        if self.num_positives < 0:
            raise PCLError(f"method config: num_positives (K_P) must be >= 0, got {self.num_positives}")
        if self.num_negatives < 0 or (self.num_negatives == 0 and not self.lr_negative):
            raise PCLError(
                f"method config: num_negatives (K_N) must be >= 1 (or 0 with lr_negative: true), got "
                f"{self.num_negatives}; the contrastive term needs at least one negative"
            )
        if self.total_positives < 1:
            raise PCLError(
                "method config: no positives (num_positives = 0 and gt_positive = false); set num_positives >= 1 "
                "or gt_positive: true"
            )
        _range("sharpen_range", self.sharpen_range, lower=0.0)
        _range("blur_sigma_range", self.blur_sigma_range, lower=0.0)
        if not self.blur_sizes:
            raise PCLError("method config: blur_sizes is empty; give odd kernel sizes such as [3, 5, 7, 9, 11]")
        for size in self.blur_sizes:
            if size < 1 or size % 2 == 0:
                raise PCLError(f"method config: blur_sizes must be odd positive integers, got {size}")
        n_layers = N_LAYERS[self.embedding]
        if not self.layers:
            raise PCLError("method config: layers is empty; give at least one feature index")
        for index in self.layers:
            if not 0 <= index < n_layers:
                raise PCLError(
                    f"method config: layers index {index} is out of range for embedding {self.embedding!r} "
                    f"(valid 0..{n_layers - 1})"
                )
        if len(set(self.layers)) != len(self.layers):
            raise PCLError(f"method config: layers contains duplicates: {list(self.layers)}")
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise PCLError(f"method config: tau must be a positive finite number, got {self.tau}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise PCLError(f"method config: weight (alpha) must be >= 0 and finite, got {self.weight}")
        if not (math.isfinite(self.rgb_range) and self.rgb_range > 0):
            raise PCLError(f"method config: rgb_range must be positive, got {self.rgb_range}")
        if self.d_lr is not None and not (math.isfinite(self.d_lr) and self.d_lr > 0):
            raise PCLError(f"method config: d_lr must be positive (or null = SR lr), got {self.d_lr}")
        if len(self.d_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.d_betas):
            raise PCLError(f"method config: d_betas must be two numbers in [0, 1), got {list(self.d_betas)}")
        if not self.d_eps > 0:
            raise PCLError(f"method config: d_eps must be positive, got {self.d_eps}")
        return self


# ---------------------------------------------------------------------------- presets

_RELEASED: dict[str, Any] = dict(
    semantics="released",
    num_positives=3,
    gt_positive=True,
    sharpen_range=(0.5, 3.0),
    num_negatives=3,
    lr_negative=True,
    blur_sizes=(3, 5, 7, 9, 11),
    blur_sigma_range=(0.1, 2.0),
    blur_isotropic=False,
    blur_per_image=False,
    quantize=True,
    embedding="haar",
    layers=(4,),
    pre_activation=False,
    vgg_normalize=False,
    rgb_range=255.0,
    loss_type="infonce",
    tau=1.0,
    weight=5.0,
    fuse_sr=False,
    contrastive_d=True,
    d_lr=None,
    update_first=True,
)

#: preset name -> settings; ``paper`` is the dataclass defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "released": dict(_RELEASED),
    "released-rcan": {**_RELEASED, "num_positives": 0},
    "released-nlsn": {**_RELEASED, "loss_type": "cosine", "weight": 3.0, "rgb_range": 1.0, "contrastive_d": False},
}


# ---------------------------------------------------------------------------- coercion helpers

_BOOL = {"gt_positive", "lr_negative", "blur_isotropic", "blur_per_image", "quantize", "pre_activation",
         "vgg_normalize", "fuse_sr", "contrastive_d", "update_first"}
_INT = {"num_positives", "num_negatives", "embedding_warmup"}
_FLOAT = {"rgb_range", "tau", "weight", "d_eps"}
_STR = {"semantics", "embedding", "loss_type", "warmup_mode"}
_FLOAT_PAIR = {"sharpen_range", "blur_sigma_range", "d_betas"}
_INT_TUPLE = {"blur_sizes", "layers"}


def _coerce(name: str, value: Any) -> Any:
    """Convert a YAML value to the field's type or raise PCLError naming the key."""
    def bad(kind: str) -> PCLError:
        return PCLError(f"method config: {name} must be {kind}, got {value!r}")

    if name in _BOOL:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if name in _INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if name in _FLOAT or name == "d_lr":
        if name == "d_lr" and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if name in _STR:
        if not isinstance(value, str):
            raise bad("a string")
        return value.strip().lower()
    if name in _FLOAT_PAIR:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
            raise bad("a pair [lo, hi]")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise bad("a pair of numbers")
        return (float(value[0]), float(value[1]))
    if name in _INT_TUPLE:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise bad("a list of integers")
        items = list(value)
        if any(isinstance(v, bool) or not isinstance(v, int) for v in items):
            raise bad("a list of integers")
        return tuple(items)
    return value


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise PCLError(f"method config: unknown {name} {value!r}; valid values: {', '.join(valid)}")


def _range(name: str, pair: tuple[float, float], *, lower: float) -> None:
    lo, hi = pair
    if not (math.isfinite(lo) and math.isfinite(hi) and lower < lo < hi):
        raise PCLError(f"method config: {name} must be [lo, hi) with {lower} < lo < hi, got {list(pair)}")
