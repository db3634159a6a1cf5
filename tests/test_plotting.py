"""Tests of helpers.plotting: axes counts, titles and annotation texts, value ranges."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from helpers import plotting


def _texts(fig: Figure) -> list[str]:
    """Every text drawn in the figure: titles, annotations, labels, suptitle."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def _render(fig: Figure) -> None:
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def test_to_display_ranges_and_layouts():
    x = torch.tensor([[[-1.0, 0.0], [1.0, 2.0]]])  # (1, 2, 2) in model space, one value outside
    np.testing.assert_allclose(plotting.to_display(x, value_range=(-1, 1)), [[0.0, 0.5], [1.0, 1.0]])
    rgb = np.random.default_rng(0).uniform(size=(3, 4, 5))
    out = plotting.to_display(rgb, value_range=(0, 1))
    assert out.shape == (4, 5, 3)
    np.testing.assert_allclose(out, np.moveaxis(rgb, 0, -1), atol=1e-6)
    assert plotting.to_display(np.zeros((4, 5, 3)), value_range=(0, 1)).shape == (4, 5, 3)  # channel-last
    assert plotting.to_display(np.zeros((1, 3, 4, 5)), value_range=(0, 1)).shape == (4, 5, 3)
    assert plotting.to_display(np.zeros((6, 7)), value_range=(0, 1)).shape == (6, 7)
    with pytest.raises(ValueError, match="value_range"):
        plotting.to_display(rgb, value_range=(1, 0))
    with pytest.raises(ValueError, match="channels"):
        plotting.to_display(np.zeros((5, 4, 4)), value_range=(0, 1))


def test_image_grid_batch_with_titles_and_annotations():
    imgs = torch.rand(5, 3, 16, 16) * 2 - 1
    titles = [f"img {i}" for i in range(5)]
    notes = [f"PSNR {20 + i:.1f} dB / LPIPS 0.{i}1" for i in range(5)]
    fig = plotting.image_grid(imgs, value_range=(-1, 1), titles=titles, annotations=notes, nrow=3, suptitle="Recon")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 5  # 2 rows x 3 columns, the empty cell removed
    assert all(not ax.axison for ax in fig.axes)
    texts = _texts(fig)
    for s in titles + notes + ["Recon"]:
        assert s in texts
    _render(fig)


def test_image_grid_mixed_list_grayscale_and_rgb():
    imgs = [np.zeros((1, 8, 8)), torch.ones(3, 8, 8), np.full((8, 8), 0.5)]
    fig = plotting.image_grid(imgs, value_range=(0, 1))
    assert len(fig.axes) == 3
    gray = fig.axes[0].images[0]
    assert gray.get_array().ndim == 2 and gray.get_cmap().name == "gray"
    assert fig.axes[1].images[0].get_array().shape == (8, 8, 3)
    _render(fig)
    with pytest.raises(ValueError, match="annotations"):
        plotting.image_grid(imgs, value_range=(0, 1), annotations=["a"])
    with pytest.raises(TypeError):
        plotting.image_grid(imgs)  # value_range is required  # type: ignore[call-arg]


def test_image_table_rows_and_columns():
    rows = {
        "measurement": torch.rand(3, 3, 12, 12),
        "DPS": [torch.rand(3, 12, 12) for _ in range(3)],
        "truth": torch.rand(2, 1, 12, 12),  # shorter row: last cell stays empty
    }
    notes = {"DPS": ["24.1 dB", "23.0 dB", "25.2 dB"]}
    fig = plotting.image_table(rows, value_range=(0, 1), col_titles=["a", "b", "c"], annotations=notes)
    assert len(fig.axes) == 3 + 3 + 2
    texts = _texts(fig)
    for s in ["measurement", "DPS", "truth", "a", "b", "c", *notes["DPS"]]:
        assert s in texts
    _render(fig)
    with pytest.raises(ValueError, match="col_titles"):
        plotting.image_table(rows, value_range=(0, 1), col_titles=["a"])
    with pytest.raises(ValueError, match="not in rows"):
        plotting.image_table(rows, value_range=(0, 1), annotations={"SDEdit": ["x"]})


def test_trajectory_strip():
    ts = [999, 500, 0]
    x_t = [torch.randn(2, 3, 8, 8) for _ in ts]  # batches: image 0 is shown
    x0 = [torch.randn(3, 8, 8).clamp(-1, 1) for _ in ts]
    fig = plotting.trajectory_strip(ts, x_t, x0)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["t = 999", "t = 500", "t = 0"]
    texts = _texts(fig)
    assert r"$x_t$" in texts and r"$\hat{x}_0$" in texts
    np.testing.assert_allclose(
        fig.axes[0].images[0].get_array(), plotting.to_display(x_t[0][0], value_range=(-1, 1)), atol=1e-6
    )
    _render(fig)
    with pytest.raises(ValueError, match="one x_t and one x0 per timestep"):
        plotting.trajectory_strip(ts, x_t[:2], x0)


def test_metric_curve_lines_errorbars_and_labels():
    xs = [0.2, 0.4, 0.6, 0.8]
    ys = {
        "SDEdit": [20.0, 22.5, 23.1, 21.0],
        "DPS": np.array([[24.0, 24.5, 25.0, 25.2], [23.0, 24.1, 25.4, 25.0], [24.2, 24.9, 24.6, 25.6]]),
    }
    fig = plotting.metric_curve(
        xs, ys, xlabel="t0 / T", ylabel="PSNR [dB]", yerr={"SDEdit": [0.5] * 4},
        title="Sweep", hlines={"paper": 25.67},
    )  # fmt: skip
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xlabel() == "t0 / T" and ax.get_ylabel() == "PSNR [dB]" and ax.get_title() == "Sweep"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SDEdit", "DPS"]
    assert len(ax.containers) == 2  # both series have error bars (DPS from the std of 3 repeats)
    dps_line = ax.containers[1].lines[0]
    np.testing.assert_allclose(dps_line.get_ydata(), ys["DPS"].mean(0))
    assert "paper" in _texts(fig)
    _render(fig)
    with pytest.raises(ValueError, match="values for 4 xs"):
        plotting.metric_curve(xs, {"a": [1, 2]}, xlabel="x", ylabel="y")


def test_no_pyplot_figures_are_left_open():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plotting.image_grid(torch.rand(2, 3, 8, 8), value_range=(0, 1))
    plotting.metric_curve([1, 2], {"a": [1, 2]}, xlabel="x", ylabel="y")
    assert plt.get_fignums() == before


def test_cell_size_grows_with_the_image_size():
    from helpers.plotting import cell_size_for

    assert cell_size_for(32) == cell_size_for(64) == 1.0
    assert cell_size_for(128, base=2.0) == pytest.approx(2.56)
    assert cell_size_for(256) == cell_size_for(1024) == 2.5
    with pytest.raises(ValueError, match="image_size"):
        cell_size_for(0)
