"""helpers.gpu_budget: counting network evaluations, FLOPs of the stand-in, T4 time estimates."""

import math

import pytest
import torch

from helpers import gpu_budget as gb


def _measurement(prior, op, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *prior.image_shape, generator=g) * 2 - 1
    return op(x)


# ------------------------------------------------------------------------------------- counting
def test_ddim_counts_steps_times_batch_forward_only(tiny_prior):
    from helpers.samplers import sample_ddim

    with gb.count_evaluations(tiny_prior) as n:
        res = sample_ddim(tiny_prior, num_samples=3, num_steps=7, seed=0, progress=False)
    assert res.nfe == 7
    assert (n.calls, n.forward_images, n.graph_images, n.backward_images) == (7, 21, 0, 0)
    assert (n.forward_only_images, n.forward_backward_images) == (21, 0)
    assert "eps" not in vars(tiny_prior)  # the instance is restored


def test_dps_counts_forward_backward(tiny_prior):
    from helpers.operators import SuperResolution
    from helpers.samplers import dps

    op = SuperResolution(2)
    y = _measurement(tiny_prior, op, batch=2)
    with gb.count_evaluations(tiny_prior) as n:
        res = dps(tiny_prior, op, y, num_steps=5, step_size=0.1, seed=0, progress=False)
    assert res.nfe == 5
    assert (n.calls, n.forward_images, n.graph_images, n.backward_images) == (5, 10, 10, 10)
    assert (n.forward_only_images, n.forward_backward_images) == (0, 10)


def test_recorded_but_not_differentiated_is_forward_only(tiny_prior):
    x = torch.randn(4, *tiny_prior.image_shape, requires_grad=True)
    with gb.count_evaluations(tiny_prior) as n:
        tiny_prior.eps(x, 10)  # graph built, never differentiated
        out = tiny_prior.eps(x[:2], 10)
        out.sum().backward()
    assert (n.forward_images, n.graph_images, n.backward_images) == (6, 6, 2)
    assert n.forward_only_images == 4


def test_counters_nest_and_restore_after_an_error(tiny_prior):
    from helpers.samplers import sample_ddim

    with gb.count_evaluations(tiny_prior) as outer:
        with gb.count_evaluations(tiny_prior) as inner:
            sample_ddim(tiny_prior, num_samples=1, num_steps=2, progress=False)
        sample_ddim(tiny_prior, num_samples=2, num_steps=3, progress=False)
    assert (inner.forward_images, outer.forward_images) == (2, 8)
    with pytest.raises(RuntimeError), gb.count_evaluations(tiny_prior):
        raise RuntimeError("boom")
    assert "eps" not in vars(tiny_prior)


def test_evaluations_for():
    assert gb.evaluations_for("dps", 4, 100) == (0, 400)
    assert gb.evaluations_for("ddim", 8, 50) == (400, 0)
    with pytest.raises(ValueError):
        gb.evaluations_for("dsp", 1, 1)


# ------------------------------------------------------------------------------------- FLOPs
def _hand_count(net, batch):
    """Convolution and linear FLOPs from the modules' shapes (forward hooks), independent of FlopCounterMode."""
    hand = {"conv": 0, "linear": 0}

    def conv_hook(mod, inp, out):
        kh, kw = mod.kernel_size
        hand["conv"] += 2 * out.numel() * (mod.in_channels // mod.groups) * kh * kw

    def linear_hook(mod, inp, out):
        hand["linear"] += 2 * out.numel() * mod.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    dev = next(net.parameters()).device
    size = net.config.sample_size
    try:
        with torch.no_grad():
            net(torch.randn(batch, 3, size, size, device=dev), torch.full((batch,), 3, device=dev))
    finally:
        for h in hooks:
            h.remove()
    return hand


def test_one_conv_by_hand():
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv2d(3, 32, 3, padding=1)  # the narrow stand-in's conv_in
    with FlopCounterMode(display=False) as fc:
        conv(torch.randn(1, 3, 256, 256))
    assert fc.get_total_flops() == 2 * 32 * 256 * 256 * 3 * 9 == 113_246_208


def test_measure_flops_equals_hand_count_without_attention():
    from diffusers import UNet2DModel

    net = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                      down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                      norm_num_groups=4)
    total, ops = gb.measure_flops(net, batch=2, by_op=True)
    hand = _hand_count(net, 2)
    assert ops["aten.convolution"] == hand["conv"]
    assert total == hand["conv"] + hand["linear"]  # no attention: convolutions and linear layers are everything


def test_narrow_standin_flops_match_constants_and_hand_count():
    from helpers.standin import build_standin_unet

    net = build_standin_unet("narrow", device="meta")
    total, ops = gb.measure_flops(net, by_op=True)
    assert total == pytest.approx(gb.NARROW_FORWARD_FLOPS, rel=0.01)
    hand = _hand_count(net, 1)
    assert ops["aten.convolution"] == hand["conv"]
    # the rest is linear layers and the attention products at 16×16 (≤ 2 %)
    assert hand["conv"] + hand["linear"] <= total <= 1.02 * (hand["conv"] + hand["linear"])
    fb = gb.measure_flops(net, backward=True)
    assert fb == pytest.approx(gb.NARROW_FORWARD_BACKWARD_FLOPS, rel=0.01)
    assert fb / total == pytest.approx(2.0, abs=0.02)
    assert gb.measure_flops(net, batch=2) == pytest.approx(2 * total, rel=0.01)


def test_full_standin_flops_match_constants():
    # on the meta device: shapes only, well under a second for the 113.7 M-parameter network
    got = gb.standin_flops("full")
    assert got["forward"] == pytest.approx(gb.CELEBAHQ_FORWARD_FLOPS, rel=0.01)
    assert got["forward_backward"] == pytest.approx(gb.CELEBAHQ_FORWARD_BACKWARD_FLOPS, rel=0.01)
    assert 490e9 < gb.CELEBAHQ_FORWARD_FLOPS < 500e9  # methods notes: ~496 GFLOP per forward


# ------------------------------------------------------------------------------------- T4 time
def test_t4_seconds_by_hand():
    est = gb.t4_seconds(10, 0, forward_flops=1e12, forward_backward_flops=2e12, peak_flops=8e12, efficiency=(0.5, 0.25))
    assert est.optimistic == pytest.approx(10 * 1e12 / 4e12)  # 2.5 s
    assert est.pessimistic == pytest.approx(5.0)
    est = gb.t4_seconds(10, 5, forward_flops=1e12, forward_backward_flops=2e12, peak_flops=8e12, efficiency=(0.5, 0.25))
    assert est.flops == pytest.approx(20e12)
    assert (est.optimistic, est.pessimistic) == pytest.approx((5.0, 10.0))
    # defaults: the real model at 50 % / 25 % of 8.1 TFLOPS
    one = gb.t4_seconds(1)
    assert one.optimistic == pytest.approx(497.0275e9 / 4.05e12, rel=1e-5)  # 122.7 ms
    ms = gb.per_evaluation_ms()
    assert ms["forward"] == pytest.approx((122.72, 245.44), abs=0.01)
    assert ms["forward_backward"] == pytest.approx((245.61, 491.22), abs=0.01)
    with pytest.raises(ValueError):
        gb.t4_seconds(1, efficiency=(0.2, 0.5))
    with pytest.raises(ValueError):
        gb.t4_seconds(-1)


def test_chapter_budget_report(tiny_prior):
    from helpers.samplers import sample_ddim

    with gb.count_evaluations(tiny_prior) as n:
        sample_ddim(tiny_prior, num_samples=2, num_steps=4, progress=False)
    rep = gb.chapter_budget("SDEdit", counted=n, device="cpu")
    assert (rep.forward_images, rep.backward_images, rep.source) == (8, 0, "counted")
    assert rep.within_budget and rep.verdict == "within"
    text = str(rep)
    assert "SDEdit" in text and "device cpu" in text and "8-min chapter budget" in text

    # one 1000-step DPS image: 4.1–8.2 min, only the optimistic end fits 8 min
    rep = gb.chapter_budget("DPS", runs=[("DPS, 1 image", "dps", 1, 1000)], device="cpu")
    lo, hi = rep.estimate.minutes
    assert lo == pytest.approx(4.09, abs=0.01) and hi == pytest.approx(8.19, abs=0.01)
    assert rep.verdict == "uncertain" and not rep.within_budget
    assert "possibly over" in str(rep) and "DPS, 1 image: 0 forward, 1000 forward + backward" in str(rep)
    rep = gb.chapter_budget("DPS", runs=[("DPS", "dps", 4, 1000)], device="cpu")
    assert rep.verdict == "over" and "OVER" in str(rep)
    assert math.isclose(gb.CHAPTER_BUDGET_S, 480) and math.isclose(gb.BOOK_BUDGET_S, 2700)
