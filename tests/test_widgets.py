"""The interactive explorers of helpers.widgets, driven without a browser (observers fire synchronously)."""

import pytest
import torch

pytest.importorskip("ipywidgets")

from helpers import samplers  # noqa: E402
from helpers.metrics import psnr  # noqa: E402
from helpers.operators import BoxInpainting  # noqa: E402
from helpers.widgets import sdedit_explorer, step_size_explorer  # noqa: E402

STEPS = 10


@pytest.fixture
def image():
    return torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))  # image space [0, 1]


def _direct_psnr(sample, image):
    return float(psnr(((sample.clamp(-1, 1) + 1) / 2)[0], image, data_range=1.0))


def test_sdedit_slider_recomputes_and_matches_direct_call(tiny_prior, image):
    ex = sdedit_explorer(tiny_prior, image, num_steps=STEPS, seed=3, lpips=False, operator="box")
    first_psnr, first_text = ex.psnr, ex.info.value
    assert ex.num_runs == 1 and ex.result.ok and ex.lpips is None
    assert f"{first_psnr:.2f}" in first_text

    ex.t0_slider.value = 0.8  # the observer recomputes synchronously
    assert ex.num_runs == 2 and ex.settings()["t0"] == 0.8
    assert ex.psnr != first_psnr and ex.info.value != first_text
    assert f"{ex.psnr:.2f}" in ex.info.value

    op = BoxInpainting(8, 4)  # "box" at its default strength 0.5 on 8 px
    y = op.measure(2 * image[None] - 1, noise_std=0.05, seed=0)
    direct = samplers.sdedit(tiny_prior, op, y, start_time=0.8, num_steps=STEPS, seed=3, progress=False).sample
    assert ex.psnr == pytest.approx(_direct_psnr(direct, image), abs=1e-6)
    assert torch.allclose(ex.images["reconstruction"], (direct + 1) / 2, atol=1e-6)
    assert ex.progress.value == ex.progress.max == round(0.8 * STEPS)


def test_sdedit_operator_dropdown_resets_strength_and_update(tiny_prior, image):
    ex = sdedit_explorer(tiny_prior, image, num_steps=STEPS, lpips=False)
    ex.operator_dropdown.value = "SR"
    assert ex.settings()["operator"] == "SR" and ex.settings()["strength"] in ex.strength_slider.options
    assert ex.num_runs == 2  # one recompute for the operator change, not one per widget touched
    assert ex.images["measurement"].shape == (1, 3, 8, 8)
    ex.update(operator="random", strength=0.5, t0=0.3)
    assert ex.num_runs == 3 and ex.settings() == {"t0": 0.3, "operator": "random", "strength": 0.5}
    with pytest.raises(TypeError):
        ex.update(zeta=1.0)


def test_cache_prevents_recomputation(tiny_prior, image, monkeypatch):
    calls = []
    real = samplers.sdedit

    def counting(*args, **kwargs):
        calls.append(kwargs["start_time"])
        return real(*args, **kwargs)

    monkeypatch.setattr(samplers, "sdedit", counting)
    ex = sdedit_explorer(tiny_prior, image, num_steps=STEPS, lpips=False)
    ex.t0_slider.value = 0.6
    before = ex.psnr
    ex.t0_slider.value = 0.4
    ex.t0_slider.value = 0.6
    ex.update(t0=0.4)
    assert calls == [0.4, 0.6] and ex.num_runs == 2
    assert ex.psnr == ex.cache[ex._key(ex.settings())].psnr
    ex.t0_slider.value = 0.6
    assert ex.psnr == before


def test_step_size_explorer_seed_and_direct_call(tiny_prior, image):
    ex = step_size_explorer(tiny_prior, image, method="dps", num_steps=4, seed=0, lpips=False)
    assert ex.result.ok and ex.settings() == {"step_size": 1.0, "seed": 0}
    ex.seed_box.value = 5
    ex.step_slider.value = 0.1
    y = ex.operator.measure(2 * image[None] - 1, noise_std=0.05, seed=0)
    direct = samplers.dps(tiny_prior, ex.operator, y, num_steps=4, step_size=0.1, seed=5, progress=False).sample
    assert ex.psnr == pytest.approx(_direct_psnr(direct, image), abs=1e-6)
    assert ex.num_runs == 3


def test_divergence_shows_message_and_does_not_raise(tiny_prior, image):
    ex = step_size_explorer(tiny_prior, image, method="score_ald", num_steps=5, lpips=False, step_size=1e-3,
                            sampler_kwargs={"step_rule": "poster"}, step_range=(1e-3, 1e12))
    assert ex.result.ok
    ex.step_slider.value = 1e12  # λ far too large for the poster rule: the iterate overflows
    assert not ex.result.ok and ex.psnr is None and ex.images["reconstruction"] is None
    assert "diverged" in ex.message and "diverged" in ex.info.value
    ex.step_slider.value = 1e-3  # and it recovers
    assert ex.result.ok and ex.psnr is not None


def test_monkeypatched_divergence_in_sdedit(tiny_prior, image, monkeypatch):
    def boom(*args, **kwargs):
        raise samplers.SamplerDivergedError("SDEdit diverged (test)")

    ex = sdedit_explorer(tiny_prior, image, num_steps=STEPS, lpips=False)
    monkeypatch.setattr(samplers, "sdedit", boom)
    ex.t0_slider.value = 1.0
    assert ex.message == "SDEdit diverged (test)" and "diverged (test)" in ex.info.value
    assert ex.images["measurement"] is not None  # the measurement is still shown


def test_lpips_reported_when_enabled(tiny_prior, image):
    pytest.importorskip("lpips")
    ex = sdedit_explorer(tiny_prior, image, num_steps=STEPS, lpips=True)
    if ex.lpips is None:  # no LPIPS backbone on this machine: the explorer falls back to PSNR
        pytest.skip(getattr(ex, "_lpips_error", "no LPIPS backbone"))
    assert ex.lpips >= 0 and "LPIPS" in ex.info.value


def test_rejects_bad_image(tiny_prior):
    with pytest.raises(ValueError, match="value_range"):
        sdedit_explorer(tiny_prior, torch.full((3, 8, 8), 2.0), lpips=False)
    with pytest.raises(ValueError, match="shape"):
        sdedit_explorer(tiny_prior, torch.rand(3, 16, 16), lpips=False)


def test_runaway_without_nan_shows_the_message_in_place_of_the_image(tiny_prior, image):
    """DPS at ζ′ = 1e6 stays finite but runs away: the divergence bound stops it and the explorer shows why."""
    ex = step_size_explorer(tiny_prior, image, method="dps", num_steps=4, lpips=False, step_size=1.0,
                            step_range=(1e-3, 1e6))
    assert ex.result.ok
    ex.step_slider.value = 1e6
    assert not ex.result.ok and ex.images["reconstruction"] is None
    assert "RMS" in ex.message and "ζ′=1e+06" in ex.message and "smaller" in ex.message
    assert "diverged" in ex.info.value


@pytest.mark.parametrize("size", [32, 256])
def test_default_operators_are_the_chapter_tasks_at_every_size(size):
    """At its default strength each explorer operator is build_task's (at 256 px: DPS's 61×61 std-3 blur)."""
    from helpers.evaluation.tasks import build_task
    from helpers.widgets import default_operator_choices

    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for choice, task in (("blur", "deblur"), ("box", "box"), ("random", "random"), ("SR", "sr4")):
        c = default_operator_choices(size)[choice]
        op = c.build(c.default, size)
        assert torch.allclose(op.forward(x), build_task(task, size).operator.forward(x)), (choice, size)
    if size == 256:
        blur = default_operator_choices(size)["blur"]
        assert (blur.build(blur.default, size).kernel_size, blur.default) == (61, 3.0)
