"""The validation model: shapes, masking, invariance to gain, and a batch it can overfit."""

import pytest
import torch

from pipelines.model import SIZES, ModelSize, PointerNet, diagonal_smooth, pointer_loss, standardise


def _masks(lengths, frames):
    return torch.arange(frames) < torch.tensor(lengths).unsqueeze(1)


def test_scores_shape_and_default_size():
    net = PointerNet(n_mels=128)
    raw, edit = torch.randn(3, 128, 50), torch.randn(3, 128, 20)
    scores = net(raw, _masks([50, 40, 10], 50), edit, _masks([20, 20, 5], 20))
    assert scores.shape == (3, 20, 50) and scores.dtype == torch.float32
    assert net.size == ModelSize.small()
    assert 25_000 < net.parameter_count() < 50_000  # the ~31k CPU size: 1.4 s a step on one core
    sizes = [PointerNet(128, ModelSize.named(name)).parameter_count() for name in SIZES]
    assert sizes == sorted(sizes) and sizes[-1] > 40 * sizes[0]
    with pytest.raises(ValueError, match="--model must be one of small, medium, large"):
        ModelSize.named("tiny")


@pytest.mark.parametrize("dilation", [1, 8, 16])
def test_conv_block_is_its_conv1d(dilation):
    """The channels-last 2-D path of the block computes the ``Conv1d`` it holds, gradients too."""
    from pipelines.model import _ConvBlock

    block = _ConvBlock(d=8, kernel=7, dilation=dilation)
    x = torch.randn(2, 300, 8, requires_grad=True)
    mask = _masks([300, 250], 300)
    expected = x + block.mlp(block.norm(block.conv((x * mask.unsqueeze(-1)).transpose(1, 2)).transpose(1, 2)))
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), block.conv.weight)
    got = block(x, mask)
    (grad_got,) = torch.autograd.grad(got.square().sum(), block.conv.weight)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-4, atol=1e-4)


def test_padded_raw_frames_are_never_chosen():
    net = PointerNet(n_mels=8, size=ModelSize(d=16, blocks=2))
    raw = torch.randn(2, 8, 30)
    edit = raw[:, :, 20:30].clone()
    raw_mask = _masks([30, 15], 30)
    raw[1, :, 15:] = edit[1, :, :].repeat(1, 2)[:, :15] * 100  # padding made to look like the edit
    scores = net(raw, raw_mask, edit, _masks([10, 10], 10))
    assert torch.isinf(scores[1, :, 15:]).all() and (scores[1, :, 15:] < 0).all()
    assert (scores[1].argmax(-1) < 15).all()
    assert torch.isfinite(scores[0]).all()


def test_padding_of_the_batch_does_not_change_real_scores():
    net = PointerNet(n_mels=8, size=ModelSize(d=16, blocks=2)).eval()
    raw, edit = torch.randn(1, 8, 25), torch.randn(1, 8, 12)
    alone = net(raw, _masks([25], 25), edit, _masks([12], 12))
    padded_raw = torch.cat([raw, torch.randn(1, 8, 9)], -1)
    padded_edit = torch.cat([edit, torch.randn(1, 8, 4)], -1)
    together = net(padded_raw, _masks([25], 34), padded_edit, _masks([12], 16))
    torch.testing.assert_close(together[:, :12, :25], alone, atol=1e-4, rtol=1e-4)


def test_standardisation_undoes_gain_and_offset_per_band():
    mel, mask = torch.randn(2, 6, 40), torch.ones(2, 40, dtype=torch.bool)
    scaled = mel * torch.rand(1, 6, 1).add(0.5) + torch.randn(1, 6, 1)
    torch.testing.assert_close(standardise(scaled, mask), standardise(mel, mask), atol=1e-4, rtol=1e-4)


def test_overfits_one_batch():
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = PointerNet(n_mels=8, size=ModelSize(d=32, blocks=2))
    raw = torch.randn(4, 8, 40, generator=generator)
    pointers = torch.randint(0, 40, (4, 16), generator=generator)
    edit = torch.stack([raw[b][:, pointers[b]] for b in range(4)]) + 0.5 * torch.randn(4, 8, 16, generator=generator)
    pointers[3, 12:] = -100  # padding is ignored by the loss
    raw_mask, edit_mask = torch.ones(4, 40, dtype=torch.bool), pointers != -100
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = pointer_loss(net(raw, raw_mask, edit, edit_mask), pointers)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    scores = net(raw, raw_mask, edit, edit_mask)
    real = pointers != -100
    assert loss.item() < 0.1 * first
    assert (scores.argmax(-1)[real] == pointers[real]).float().mean() > 0.95


def _smooth_by_autograd(scores, weights):
    """The smoothing as plain shifted adds, differentiated by autograd: what the written-out
    gradient of ``diagonal_smooth`` must equal."""
    half = (weights.shape[0] - 1) // 2
    out = scores * weights[half]
    for k in range(1, half + 1):
        out[:, :-k, :-k] += weights[half + k] * scores[:, k:, k:]
        out[:, k:, k:] += weights[half - k] * scores[:, :-k, :-k]
    return out


@pytest.mark.parametrize("half", [0, 1, 2, 4])
def test_diagonal_smooth_gradient_is_that_of_the_shifted_adds(half):
    generator = torch.Generator().manual_seed(half)
    scores = torch.randn(2, 7, 9, dtype=torch.double, generator=generator, requires_grad=True)
    weights = torch.randn(2 * half + 1, dtype=torch.double, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(diagonal_smooth, (scores, weights))
    upstream = torch.randn(2, 7, 9, dtype=torch.double, generator=generator)
    ours = torch.autograd.grad((diagonal_smooth(scores, weights) * upstream).sum(), (scores, weights))
    reference = torch.autograd.grad((_smooth_by_autograd(scores, weights) * upstream).sum(), (scores, weights))
    torch.testing.assert_close(diagonal_smooth(scores, weights), _smooth_by_autograd(scores, weights))
    for got, want in zip(ours, reference):
        torch.testing.assert_close(got, want)


def test_diagonal_smooth_rejects_an_even_number_of_taps():
    with pytest.raises(ValueError, match="2K \\+ 1 taps"):
        diagonal_smooth(torch.zeros(1, 3, 3), torch.ones(2))
