"""PCL losses (docs/method.md §3-§5), the grouped embedding pass, the embedding update and MethodConfig."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from pcl.errors import PCLError
from pcl.method import (
    MethodConfig,
    PCLObjective,
    build_embedding,
    contrastive_discriminator_loss,
    contrastive_term,
    cosine_difference,
    embed_groups,
    embedding_update_step,
    infonce,
    make_samples,
    pixel_cosine_similarity,
)

torch.set_num_threads(1)

HR = 32  # HR patch for the embedding tests: Haar 16x16, layer 4 at 4x4


def _unit(angle_deg: float) -> torch.Tensor:
    """A 2-channel, 1x1 feature map pointing at ``angle_deg`` (cosines known by construction)."""
    a = math.radians(angle_deg)
    return torch.tensor([math.cos(a), math.sin(a)]).view(1, 2, 1, 1)


def _batch(seed: int = 0, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    hr = F.avg_pool2d(torch.rand(b, 3, HR + 3, HR + 3, generator=gen), 4, stride=1)  # smooth-ish content
    lr = F.avg_pool2d(hr, 4)
    return hr, lr


@pytest.fixture()
def embedding() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_embedding("haar", patch_size=HR).train()


# ---------------------------------------------------------------------------- loss formulas, hand values


def test_dual_contrastive_one_real_one_fake() -> None:
    # Nr = Nf = 1: both halves equal log(1 + e^{-(r - q)}), total 2 log(1 + e^{-1.5}) = 0.402826.
    loss = contrastive_discriminator_loss(torch.tensor([2.0]), torch.tensor([0.5]))
    assert loss.item() == pytest.approx(2 * math.log(1 + math.exp(-1.5)), abs=1e-6)
    assert loss.item() == pytest.approx(0.402826, abs=1e-6)


def test_dual_contrastive_two_real_one_fake() -> None:
    # r = (1, 0), q = (0): real half = [log(1+e^{-1}) + log 2] / 2 = 0.503204;
    # fake half = -log(e^0 / (e^0 + e^{-1} + e^0)) = log(2 + e^{-1}) = 0.861994. Total 1.365198.
    loss = contrastive_discriminator_loss(torch.tensor([[1.0], [0.0]]), torch.tensor([0.0]))
    assert loss.item() == pytest.approx(1.365198, abs=1e-5)


def test_dual_contrastive_matches_definition_and_flattens() -> None:
    # Direct transcription of docs/method.md §3.1 (softmax ratios), vs the logsumexp form, on 4x4 patch logits.
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64)
    q = torch.randn(5, 1, 4, 4, generator=gen, dtype=torch.float64)
    rf, qf = r.flatten(), q.flatten()
    real = torch.stack([-torch.log(torch.exp(x) / (torch.exp(x) + torch.exp(qf).sum())) for x in rf]).mean()
    fake = torch.stack([-torch.log(torch.exp(-x) / (torch.exp(-x) + torch.exp(-rf).sum())) for x in qf]).mean()
    assert contrastive_discriminator_loss(r, q).item() == pytest.approx((real + fake).item(), rel=1e-6)


def test_similarity_is_mean_of_per_position_cosines() -> None:
    # Two positions: cosine 1 (same direction, different length) and 0 (orthogonal) -> mean 0.5.
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)      # (1, C=2, 1, 2)
    o = torch.tensor([[3.0, 0.0], [1.0, 0.0]]).T.reshape(1, 1, 2, 1, 2)   # position 0 parallel, 1 orthogonal
    assert pixel_cosine_similarity(f, o).item() == pytest.approx(0.5, abs=1e-7)


def test_infonce_one_positive_one_negative_hand_value() -> None:
    # s_p = cos 60 deg = 0.5, s_n = cos 90 deg = 0: l = -s_p + log(e^{s_p} + e^{s_n}) = 0.474077.
    sr, pos, neg = _unit(0), _unit(60).unsqueeze(1), _unit(90).unsqueeze(1)
    assert infonce(sr, pos, neg).item() == pytest.approx(-0.5 + math.log(math.exp(0.5) + 1), abs=1e-6)
    # tau = 0.5 doubles the similarities: -1 + log(e + 1) = 0.313262.
    assert infonce(sr, pos, neg, tau=0.5).item() == pytest.approx(-1 + math.log(math.e + 1), abs=1e-6)


def test_infonce_averages_over_positives_and_batch() -> None:
    # positives at 0 and 90 deg (s_p = 1, 0), one negative at 180 deg (s_n = -1):
    # l_1 = -1 + log(e + e^-1), l_2 = 0 + log(1 + e^-1); the loss is their mean (both batch rows equal).
    sr = _unit(0).expand(2, -1, -1, -1)
    pos = torch.stack((_unit(0)[0], _unit(90)[0])).unsqueeze(0).expand(2, -1, -1, -1, -1)
    neg = _unit(180).unsqueeze(1).expand(2, -1, -1, -1, -1)
    expected = (-1 + math.log(math.e + math.exp(-1)) + math.log(1 + math.exp(-1))) / 2
    assert infonce(sr, pos, neg).item() == pytest.approx(expected, abs=1e-6)


def test_cosine_difference_hand_value() -> None:
    # NLSN script (docs/method.md §4.3): mean_n s - mean_p s = (cos 90 + cos 180)/2 - cos 60 = -0.5 - 0.5 = -1.
    sr = _unit(0)
    pos = _unit(60).unsqueeze(1)
    neg = torch.stack((_unit(90)[0], _unit(180)[0])).unsqueeze(0)
    assert cosine_difference(sr, pos, neg).item() == pytest.approx(-1.0, abs=1e-6)


# ---------------------------------------------------------------------------- grouped pass = separate calls


def test_grouped_pass_equals_separate_calls(embedding: torch.nn.Module) -> None:
    # Released code: one forward per set, BatchNorm with that set's batch statistics (docs/method.md §2.3).
    hr, _ = _batch(b=3)
    x = torch.stack([hr, hr.flip(-1), hr * 0.5, torch.rand_like(hr)], dim=1)  # (B, G=4, C, H, W)
    grouped, separate = copy.deepcopy(embedding), copy.deepcopy(embedding)
    feats, logits = embed_groups(grouped, x, layers=(0, 2, 4), with_logits=True)
    for g in range(4):
        ref_feats, ref_logits = separate.forward_features(x[:, g])
        for f, layer in zip(feats, (0, 2, 4)):
            assert torch.allclose(f[:, g], ref_feats[layer], atol=2e-5, rtol=1e-4), (g, layer)
        assert torch.allclose(logits[:, g], ref_logits.reshape(3, -1), atol=2e-5, rtol=1e-4)
    # running statistics as after the 4 sequential calls
    for (name, a), (_, b) in zip(grouped.named_buffers(), separate.named_buffers()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6, rtol=1e-5), name


def test_grouped_pass_pre_activation(embedding: torch.nn.Module) -> None:
    hr, _ = _batch()
    post, _ = embed_groups(copy.deepcopy(embedding), hr.unsqueeze(1), layers=(2,))
    pre, _ = embed_groups(copy.deepcopy(embedding), hr.unsqueeze(1), layers=(2,), pre_activation=True)
    assert torch.allclose(F.leaky_relu(pre[0], 0.2), post[0], atol=1e-6)
    assert (pre[0] < 0).any() and not torch.equal(pre[0], post[0])


# ---------------------------------------------------------------------------- the contrastive term


def _samples(cfg: MethodConfig, seed: int = 0, b: int = 2):
    hr, lr = _batch(seed, b)
    return hr, lr, make_samples(hr, lr, cfg, generator=torch.Generator().manual_seed(seed))


def test_paper_gradient_reaches_sr_not_embedding(embedding: torch.nn.Module) -> None:
    cfg = MethodConfig()
    hr, _, s = _samples(cfg)
    for fuse in (False, True):
        sr = (hr + 0.05).clamp(0, 1).requires_grad_()
        term = contrastive_term(embedding, sr, s.positives, s.negatives, layers=(0, 1, 2, 3), fuse_sr=fuse)
        (F.l1_loss(sr, hr) + 0.1 * term).backward()
        grad_l1 = torch.sign(sr.detach() - hr) / sr.numel()
        assert (sr.grad - grad_l1).abs().sum() > 0  # the term contributes
        assert all(p.grad is None for p in embedding.parameters())


def test_fused_and_split_sr_calls_agree(embedding: torch.nn.Module) -> None:
    cfg = MethodConfig()
    hr, _, s = _samples(cfg)
    values, grads = [], []
    for fuse in (False, True):
        sr = (hr * 0.9).requires_grad_()
        term = contrastive_term(embedding, sr, s.positives, s.negatives, layers=(0, 3), fuse_sr=fuse)
        term.backward()
        values.append(term.item())
        grads.append(sr.grad)
    assert values[0] == pytest.approx(values[1], abs=1e-6)
    assert torch.allclose(grads[0], grads[1], atol=1e-7, rtol=1e-4)


def test_released_term_is_constant_for_sr(embedding: torch.nn.Module) -> None:
    # docs/method.md §5: the released term is computed under no_grad, so the SR net is trained by L1 alone.
    cfg = MethodConfig.preset("released")
    hr, _, s = _samples(cfg)
    sr = (hr + 0.05).clamp(0, 1).requires_grad_()
    term = contrastive_term(embedding, sr, s.positives, s.negatives, layers=(4,), semantics="released",
                            input_scale=255.0)
    assert not term.requires_grad and term.grad_fn is None
    (F.l1_loss(sr, hr) + 5 * term).backward()
    assert torch.allclose(sr.grad, torch.sign(sr.detach() - hr) / sr.numel())


def test_released_term_equals_separate_calls(embedding: torch.nn.Module) -> None:
    # Reference: one forward per set (SR, each positive, each negative), InfoNCE of docs/method.md §4.2.
    cfg = MethodConfig.preset("released")
    hr, _, s = _samples(cfg)
    sr = hr * 0.95
    ours = contrastive_term(copy.deepcopy(embedding), sr, s.positives, s.negatives, layers=(2, 4),
                            semantics="released")
    net = copy.deepcopy(embedding)
    with torch.no_grad():
        f_sr = net.forward_features(sr)[0]
        f_pos = [net.forward_features(s.positives[:, j])[0] for j in range(s.positives.shape[1])]
        f_neg = [net.forward_features(s.negatives[:, k])[0] for k in range(s.negatives.shape[1])]
    ref = []
    for layer in (2, 4):
        pos = torch.stack([f[layer] for f in f_pos], 1)
        neg = torch.stack([f[layer] for f in f_neg], 1)
        ref.append(infonce(f_sr[layer], pos, neg))
    assert ours.item() == pytest.approx(torch.stack(ref).mean().item(), abs=1e-5)


def test_infonce_lower_when_sr_is_a_positive(embedding: torch.nn.Module) -> None:
    cfg = MethodConfig()
    _, _, s = _samples(cfg)
    kw = dict(layers=(0, 1, 2, 3))
    at_pos = contrastive_term(embedding, s.positives[:, 0], s.positives, s.negatives, **kw)
    at_neg = contrastive_term(embedding, s.negatives[:, 0], s.positives, s.negatives, **kw)
    assert at_pos.item() < at_neg.item()


def test_infonce_at_initialisation_is_about_log5(embedding: torch.nn.Module) -> None:
    # docs/method.md §4.2: with tau = 1 and |N| = 4 the term starts near log(1 + |N|) = log 5 = 1.609
    # (1.607 measured with the released modules).  An untrained SR output (unrelated to the GT)
    # is about equally similar to every sample.
    cfg = MethodConfig.preset("released-rcan")
    hr, _, s = _samples(cfg, b=4)
    sr = torch.rand(hr.shape, generator=torch.Generator().manual_seed(9))
    term = contrastive_term(embedding, sr, s.positives, s.negatives, layers=(4,), semantics="released")
    assert s.negatives.shape[1] == 4
    assert term.item() == pytest.approx(math.log(5), abs=0.05)


def test_cosine_term_sums_over_layers(embedding: torch.nn.Module) -> None:
    cfg = MethodConfig.preset("released-nlsn")
    hr, _, s = _samples(cfg)
    kw = dict(semantics="released", loss_type="cosine")
    one = [contrastive_term(copy.deepcopy(embedding), hr, s.positives, s.negatives, layers=(k,), **kw) for k in (2, 4)]
    both = contrastive_term(copy.deepcopy(embedding), hr, s.positives, s.negatives, layers=(2, 4), **kw)
    assert both.item() == pytest.approx(one[0].item() + one[1].item(), abs=1e-6)


def test_term_argument_errors(embedding: torch.nn.Module) -> None:
    hr, _, s = _samples(MethodConfig())
    with pytest.raises(PCLError, match="unknown semantics 'authors'"):
        contrastive_term(embedding, hr, s.positives, s.negatives, layers=(0,), semantics="authors")
    with pytest.raises(PCLError, match="layer index 8"):
        contrastive_term(embedding, hr, s.positives, s.negatives, layers=(8,))
    with pytest.raises(PCLError, match="tau must be positive"):
        contrastive_term(embedding, hr, s.positives, s.negatives, layers=(0,), tau=0.0)


# ---------------------------------------------------------------------------- embedding update


@pytest.mark.parametrize("contrastive_d", [False, True])
def test_embedding_update_step(embedding: torch.nn.Module, contrastive_d: bool) -> None:
    cfg = MethodConfig.preset("released")
    hr, _, s = _samples(cfg)
    sr = (hr * 0.9).requires_grad_()
    # Reference loss: separate calls, real = HR [+ sharpened], fake = SR [+ blurred] (docs/method.md §3.2).
    ref_net = copy.deepcopy(embedding)
    real = [hr] + ([s.generated_positives[:, j] for j in range(3)] if contrastive_d else [])
    fake = [sr.detach()] + ([s.generated_negatives[:, k] for k in range(3)] if contrastive_d else [])
    with torch.no_grad():
        ref = contrastive_discriminator_loss(torch.cat([ref_net(x).flatten() for x in real]),
                                             torch.cat([ref_net(x).flatten() for x in fake]))
    before = [p.detach().clone() for p in embedding.parameters()]
    opt = torch.optim.Adam(embedding.parameters(), lr=1e-3)
    loss = embedding_update_step(embedding, opt, hr, sr.detach(), s, contrastive_d=contrastive_d)
    assert not loss.requires_grad
    assert loss.item() == pytest.approx(ref.item(), abs=1e-4)
    assert any(not torch.equal(a, p) for a, p in zip(before, embedding.parameters()))
    assert sr.grad is None


def test_paper_objective_step_then_sr_backward(embedding: torch.nn.Module) -> None:
    # Paper order: term with the previous embedding, then the embedding's Adam step, then the SR
    # backward; the in-place update must not break (or leak into) the SR graph.
    cfg = MethodConfig(layers=(0, 2))
    hr, lr = _batch()
    obj = PCLObjective(cfg, sr_lr=1e-4, embedding=embedding, generator=torch.Generator().manual_seed(0))
    sr = (hr * 0.9).requires_grad_()
    out = obj.step(sr, hr, lr)
    grads_after_update = [p.grad.clone() for p in embedding.parameters()]
    (F.l1_loss(sr, hr) + out.weighted).backward()
    assert sr.grad.abs().sum() > 0 and out.embedding_loss is not None
    assert all(torch.equal(a, p.grad) for a, p in zip(grads_after_update, embedding.parameters()))


def test_released_objective_updates_first(embedding: torch.nn.Module) -> None:
    cfg = MethodConfig.preset("released-rcan", layers=[4])
    hr, lr = _batch()
    obj = PCLObjective(cfg, sr_lr=5e-5, embedding=embedding, generator=torch.Generator().manual_seed(0))
    out = obj.step(hr * 0.9, hr, lr)
    assert not out.term.requires_grad
    assert out.weighted.item() == pytest.approx(5 * out.term.item(), rel=1e-6)
    assert out.samples.positives.shape[1] == 1 and out.samples.negatives.shape[1] == 4


# ---------------------------------------------------------------------------- configuration


def test_presets() -> None:
    paper = MethodConfig()
    assert (paper.semantics, paper.total_positives, paper.total_negatives, paper.layers) == ("paper", 5, 4, (0, 1, 2, 3))
    assert paper.sharpen_range == (1.5, 3.0) and paper.blur_sigma_range == (0.3, 1.5) and paper.tau == 1.0
    rcan = MethodConfig.preset("released-rcan")
    assert (rcan.total_positives, rcan.total_negatives, rcan.layers, rcan.weight, rcan.contrastive_d) == (1, 4, (4,), 5.0, True)
    nlsn = MethodConfig.preset("released-nlsn")
    assert (nlsn.loss_type, nlsn.weight, nlsn.rgb_range, nlsn.total_positives) == ("cosine", 3.0, 1.0, 4)
    assert MethodConfig.from_dict({"semantics": "released"}) == MethodConfig.preset("released")
    assert MethodConfig.preset("released", embedding="fft").input_kind == "rgb"  # docs/method.md §2.1: F+D = D in code
    assert MethodConfig.from_dict(paper.to_dict()) == paper


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"semantics": "authors"}, "unknown semantics 'authors'"),
        ({"preset": "rcan"}, "unknown preset 'rcan'"),
        ({"layers": [0, 8]}, "layers index 8 is out of range"),
        ({"embedding": "vgg", "layers": [5]}, "layers index 5 is out of range for embedding 'vgg'"),
        ({"num_negatives": 0}, r"num_negatives \(K_N\) must be >= 1"),
        ({"num_positives": 0, "gt_positive": False}, "no positives"),
        ({"tau": 0}, "tau must be a positive"),
        ({"tau": -1.0}, "tau must be a positive"),
        ({"temperature": 0.1}, "unknown key 'temperature'"),
        ({"num_positives": 2.5}, "num_positives must be an integer"),
        ({"sharpen_range": [3.0, 1.5]}, "sharpen_range must be"),
        ({"blur_sizes": [3, 4]}, "odd positive"),
        ({"loss_type": "nce"}, "unknown loss_type 'nce'"),
        ({"layers": [2, 2]}, "duplicates"),
    ],
)
def test_bad_configuration_is_a_pclerror(settings: dict, message: str) -> None:
    with pytest.raises(PCLError, match=message):
        MethodConfig.from_dict(settings)


def test_objective_validates_before_training() -> None:
    bad = MethodConfig(tau=0.0)  # constructed directly, bypassing from_dict
    with pytest.raises(PCLError, match="tau"):
        PCLObjective(bad, sr_lr=1e-4)
    with pytest.raises(PCLError, match="learning rate"):
        PCLObjective(MethodConfig(), patch_size=HR)


def test_samples_and_similarities_stay_float32_under_bf16_autocast(embedding: torch.nn.Module) -> None:
    # Precision policy (docs/method_choices.md): under bf16 autocast only the networks' convolutions
    # run in bf16. The generated samples must equal the float32 ones bit for bit (a blur of sigma 0.3
    # changes pixels by less than bf16's rounding), and the term must come out of float32 arithmetic.
    import copy

    cfg = MethodConfig(layers=(0, 2))
    hr, lr = _batch()
    sr = hr * 0.9
    plain = PCLObjective(cfg, sr_lr=1e-4, embedding=copy.deepcopy(embedding), generator=torch.Generator().manual_seed(5))
    mixed = PCLObjective(cfg, sr_lr=1e-4, embedding=copy.deepcopy(embedding), generator=torch.Generator().manual_seed(5))
    ref = plain.step(sr, hr, lr)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mixed.step(sr, hr, lr)
    assert torch.equal(out.samples.positives, ref.samples.positives)
    assert torch.equal(out.samples.negatives, ref.samples.negatives)
    assert out.term.dtype == torch.float32 and out.embedding_loss.dtype == torch.float32
    # bf16 convolutions move the term a little; float32 similarities keep it close (measured ~1e-3 relative)
    assert out.term.item() == pytest.approx(ref.term.item(), rel=2e-2)
