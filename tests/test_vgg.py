"""VGG-19 features for Table IV config 1 (docs/method.md §2.4): layout, taps, weights, gradient path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pcl.errors import PCLError
from pcl.method import contrastive_term
from pcl.models.vgg import (
    VGG19_CONV_INDICES,
    VGG19_TAPS,
    VGG19Features,
    build_vgg19,
    load_vgg19_pretrained,
    vgg19_weights_path,
)
from pcl.weights import hub_checkpoint_dir

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    torch.manual_seed(0)
    return VGG19Features(normalize=False)


def test_state_dict_matches_torchvision_layout(vgg: VGG19Features) -> None:
    # torchvision vgg19().features: conv layers at these indices (module listing of
    # torchvision.models.vgg19, config "E"), keys '<index>.weight' / '<index>.bias'.
    assert VGG19_CONV_INDICES == (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
    keys = list(vgg.state_dict())
    assert keys == [f"{i}.{p}" for i in VGG19_CONV_INDICES for p in ("weight", "bias")]
    sd = vgg.state_dict()
    assert sd["0.weight"].shape == (64, 3, 3, 3) and sd["34.weight"].shape == (512, 512, 3, 3)
    assert len(vgg) == 37 and isinstance(vgg[36], torch.nn.MaxPool2d)
    # torchvision vgg19: 143,667,240 parameters in total, of which the classifier holds
    # 25088*4096+4096 + 4096*4096+4096 + 4096*1000+1000 = 123,642,856 -> features 20,024,384.
    assert sum(p.numel() for p in vgg.parameters()) == 20_024_384


def test_parameters_are_frozen(vgg: VGG19Features) -> None:
    assert not any(p.requires_grad for p in vgg.parameters())


def test_taps_shapes_and_values(vgg: VGG19Features) -> None:
    x = torch.rand(2, 3, 32, 32)
    taps = vgg.taps(x, (0, 1, 2, 3, 4))
    # relu1_1 .. relu5_1 (modules 1, 6, 11, 20, 29): 64@32, 128@16, 256@8, 512@4, 512@2
    assert [tuple(t.shape[1:]) for t in taps] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    assert VGG19_TAPS == (1, 6, 11, 20, 29)
    for tap, end in zip(taps, VGG19_TAPS):
        ref = vgg[: end + 1](x)  # plain Sequential slice through the tap
        assert torch.equal(tap, ref)
    assert torch.equal(vgg.taps(x, (3, 1))[0], taps[3])  # requested order kept


def test_imagenet_normalisation() -> None:
    plain = VGG19Features(normalize=False)
    normed = VGG19Features(normalize=True)
    normed.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(normed.taps(x, (1,))[0], plain.taps((x - mean) / std, (1,))[0], atol=1e-6)


def test_tap_index_out_of_range(vgg: VGG19Features) -> None:
    with pytest.raises(PCLError, match="tap index 5"):
        vgg.taps(torch.rand(1, 3, 8, 8), (5,))


def test_missing_weights_name_the_expected_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert vgg19_weights_path() == expected
    with pytest.raises(PCLError, match="vgg19-dcbb9e9d.pth"):
        build_vgg19(pretrained=True)


def test_hub_dir_follows_torch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # torch.hub.get_dir() is the authority on where torchvision caches weights.
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert hub_checkpoint_dir() == Path(torch.hub.get_dir()) / "checkpoints" == tmp_path / "torch" / "hub" / "checkpoints"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert hub_checkpoint_dir() == Path(torch.hub.get_dir()) / "checkpoints"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert hub_checkpoint_dir() == Path(torch.hub.get_dir()) / "checkpoints"


def test_layers_equal_torchvision(vgg: VGG19Features) -> None:
    import torchvision

    reference = torchvision.models.vgg19(weights=None).features
    assert list(vgg.state_dict()) == list(reference.state_dict())
    assert [type(m) for m in vgg] == [type(m) for m in reference]


def test_loads_a_torchvision_style_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vgg: VGG19Features) -> None:
    # torchvision's file holds the whole network: 'features.<i>.*' plus 'classifier.*'.
    state = {f"features.{k}": v.clone() for k, v in vgg.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    # The cached file is hash-checked: a stand-in under the real name is refused with both digests.
    with pytest.raises(PCLError, match="does not start with dcbb9e9d"):
        build_vgg19(normalize=False, pretrained=True)
    loaded = build_vgg19(normalize=False, pretrained=True, path=path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in vgg.state_dict().items())
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(PCLError, match="does not hold VGG-19 features weights"):
        load_vgg19_pretrained(VGG19Features(), path)


@pytest.mark.parametrize("semantics", ["paper", "released"])
def test_vgg_contrastive_term_reaches_sr(vgg: VGG19Features, semantics: str) -> None:
    # Spec 2.4 / 9 item 30: the released VGGInfoNCE keeps the SR graph, so both semantics back-propagate
    # into the SR image, never into VGG's parameters.
    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 16, 16, generator=gen)
    sr = torch.rand(2, 3, 16, 16, generator=gen, requires_grad=True)
    pos = hr.unsqueeze(1)
    neg = torch.rand(2, 2, 3, 16, 16, generator=gen)
    term = contrastive_term(vgg, sr, pos, neg, layers=(0, 1), semantics=semantics, input_kind="rgb")
    term.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())
