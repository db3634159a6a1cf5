"""The static explorers (helpers.static_explorer): grids, their JSON files, the HTML contract, the committed grids."""

import html.parser
import itertools
import json
import math
import re

import numpy as np
import pytest
import torch

from helpers import static_explorer as se
from helpers.metrics import psnr
from helpers.steps_curve import CPU_STEPS

ONE_MB = 1_000_000
PNG_STEP = 0.5 / 255  # the largest change of a pixel by the PNG's 8-bit rounding


@pytest.fixture(scope="module")
def prior():
    from conftest import tiny_unet
    from helpers.priors import Prior
    from helpers.schedule import NoiseSchedule

    return Prior(tiny_unet(), NoiseSchedule.linear(), name="tiny")


@pytest.fixture(scope="module")
def image():
    return torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))  # image space [0, 1]


@pytest.fixture(scope="module")
def sdedit_grid(prior, image):
    return se.compute_grid("sdedit", prior, image, values={"t0": [0.2, 0.6, 1.0], "operator": ["box", "sr4"]},
                           num_steps=4, lpips=False, progress=False)


@pytest.fixture(scope="module")
def dps_grid(prior, image):  # ζ′ = 1e6 makes DPS diverge at its first step
    return se.compute_grid("dps", prior, image, values={"step_size": [1.0, 1e6]}, num_steps=3, lpips=False,
                           progress=False)


# ---------------------------------------------------------------------------- parsing the HTML
class _Tags(html.parser.HTMLParser):
    """Every start tag (name, attribute dict) and the text of each <script>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.scripts, self._in_script = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = [dict(attrs), ""]

    def handle_data(self, data):
        if self._in_script is not None:
            self._in_script[1] += data

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script is not None:
            self.scripts.append(tuple(self._in_script))
            self._in_script = None


def _parse(page):
    p = _Tags()
    p.feed(page)
    p.close()
    return p


def _embedded_grid(page):
    data = [text for attrs, text in _parse(page).scripts if attrs.get("type") == "application/json"]
    assert len(data) == 1
    return json.loads(data[0])


def _find(tags, name, **attrs):
    return [a for t, a in tags if t == name and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def _text_of(page, metric):
    m = re.search(rf'data-metric="{metric}">([^<]*)</span>', page)
    return m.group(1)


# ---------------------------------------------------------------------------- the grid
def test_grid_shape_keys_and_order(sdedit_grid, image):
    g = sdedit_grid
    assert g["format"] == se.GRID_FORMAT and g["chapter"] == "sdedit" and g["method"] == "SDEdit"
    assert [p["name"] for p in g["params"]] == ["t0", "operator", "noise_std"]
    values = [p["values"] for p in g["params"]]
    assert values == [[0.2, 0.6, 1.0], ["box", "sr4"], list(se.NOISE_STDS)]
    assert len(g["points"]) == 3 * 2 * len(se.NOISE_STDS)
    for point, combo in zip(g["points"], itertools.product(*values)):  # row-major over the params
        assert point["settings"] == dict(zip(["t0", "operator", "noise_std"], combo))
        assert set(point) == {"settings", "reconstruction", "measurement", "psnr", "lpips", "measurement_psnr", "message"}
        assert point["message"] == "" and point["lpips"] is None  # lpips=False
        for role in ("reconstruction", "measurement"):
            assert se.decode_png(g["images"][point[role]]).shape == (3, 8, 8)
    # defaults: the spec's where it is on the grid (t0 = 0.4 is not: the first value), as indices
    assert [p["default"] for p in g["params"]] == [0, 0, 0]
    assert np.abs(se.decode_png(g["images"][g["truth"]]) - image.numpy()).max() <= PNG_STEP + 1e-9
    # the operator slider shows the task's description; one measurement per (operator, σ_y), shared over t0
    assert g["params"][1]["texts"][1].startswith("super-resolution")
    assert len({p["measurement"] for p in g["points"]}) == 2 * len(se.NOISE_STDS)
    assert g["meta"]["num_steps"] == 4 and g["meta"]["command"] == se.make_command("sdedit")


def test_diverged_point_carries_its_message(dps_grid):
    ok, bad = dps_grid["points"][0], dps_grid["points"][len(se.NOISE_STDS)]
    assert ok["settings"]["step_size"] == 1.0 and ok["reconstruction"] and ok["psnr"] is not None
    assert bad["settings"]["step_size"] == 1e6
    assert bad["reconstruction"] is None and bad["psnr"] is None and bad["lpips"] is None
    assert "diverged" in bad["message"] and "step_size" in bad["message"]
    assert bad["measurement"] == ok["measurement"] and bad["measurement_psnr"] == ok["measurement_psnr"]


def test_impossible_setting_is_a_message_too(prior, image):
    g = se.compute_grid("dps", prior, image, values={"step_size": [0.0], "noise_std": [0.05]}, num_steps=2,
                        lpips=False, progress=False)
    (point,) = g["points"]
    assert point["reconstruction"] is None and "step_size" in point["message"]


def test_psnr_is_that_of_the_stored_picture_within_png_rounding(sdedit_grid, dps_grid, image):
    checked = 0
    for g in (sdedit_grid, dps_grid):
        for point in g["points"]:
            if point["reconstruction"] is None:
                continue
            png = se.decode_png(g["images"][point["reconstruction"]])
            # ‖png − truth‖ differs from ‖float − truth‖ by at most ‖png − float‖ ≤ 0.5/255 in RMS
            rms_float = 10 ** (-point["psnr"] / 20)
            rms_png = 10 ** (-psnr(torch.from_numpy(png).float(), image, data_range=1.0) / 20)
            assert abs(rms_png - rms_float) <= PNG_STEP + 1e-6, point["settings"]
            checked += 1
    assert checked == len(sdedit_grid["points"]) + len(se.NOISE_STDS)


def test_bad_arguments(prior, image):
    with pytest.raises(ValueError, match="chapter"):
        se.compute_grid("ddrm", prior, image)
    with pytest.raises(ValueError, match="zeta"):
        se.compute_grid("dps", prior, image, values={"zeta": [1.0]}, num_steps=2, progress=False)
    with pytest.raises(ValueError, match="shape"):
        se.compute_grid("dps", prior, torch.rand(3, 16, 16), num_steps=2, progress=False)
    with pytest.raises(ValueError, match="image space"):
        se.compute_grid("dps", prior, image * 2 - 1, num_steps=2, progress=False)


def test_lpips_is_stored_when_asked(prior, image):
    pytest.importorskip("lpips")
    g = se.compute_grid("sdedit", prior, image, values={"t0": [0.3], "operator": ["box"], "noise_std": [0.05]},
                        num_steps=4, lpips=True, progress=False)
    (point,) = g["points"]
    assert point["lpips"] is not None and 0 <= point["lpips"] < 2


# ---------------------------------------------------------------------------- files
def test_save_and_load_round_trip_as_plain_json(sdedit_grid, tmp_path):
    path = se.save_grid(sdedit_grid, tmp_path / "sub" / "sdedit.json")
    assert json.loads(path.read_text(encoding="utf-8")) == sdedit_grid  # plain JSON, no pickle
    assert se.load_grid(path) == sdedit_grid
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="static-explorer"):
        se.load_grid(path)
    broken = dict(sdedit_grid, points=sdedit_grid["points"][:-1])
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="points"):
        se.load_grid(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        se.load_grid(path)


# ---------------------------------------------------------------------------- the HTML contract
def test_html_contract(sdedit_grid):
    page = se.render_html(sdedit_grid)
    tags = _parse(page).tags
    roots = _find(tags, "div", **{"class": "static-explorer"})
    assert len(roots) == 1 and roots[0]["data-explorer"] == "sdedit" and roots[0]["id"] == "sdedit-explorer"
    assert page.startswith('<div class="static-explorer"') and page.rstrip().endswith("</div>")
    sliders = [a for t, a in tags if t == "input" and a.get("class") == "explorer-slider"]
    assert [s["data-param"] for s in sliders] == ["t0", "operator", "noise_std"]
    for s, p in zip(sliders, sdedit_grid["params"]):  # one slider position per grid value
        assert s["type"] == "range" and s["min"] == "0" and int(s["max"]) == len(p["values"]) - 1
        assert s["step"] == "1" and int(s["value"]) == p["default"]
        assert s["id"].startswith("sdedit-explorer-")
        labels = [a for t, a in tags if t == "label" and a.get("for") == s["id"]]
        outputs = [a for t, a in tags if t == "output" and a.get("data-param") == s["data-param"]]
        assert len(labels) == 1 and len(outputs) == 1 and outputs[0]["class"] == "explorer-value"
    for p in sdedit_grid["params"]:  # the labels show the current (default) values
        assert f'data-param="{p["name"]}" for="sdedit-explorer-{p["name"]}">{p["texts"][p["default"]]}</output>' in page
    images = {a["data-role"]: a for t, a in tags if t == "img" and a.get("class") == "explorer-image"}
    assert set(images) == {"reconstruction", "measurement", "truth"}
    for a in images.values():
        assert a["alt"].strip() and a["src"].startswith("data:image/png;base64,")
        assert "width:128px" in a["style"]  # upscaled by CSS, not stored upscaled
    assert "image-rendering:pixelated" in page
    assert {a["data-metric"] for t, a in tags if t == "span" and a.get("class") == "explorer-metric"} >= {"psnr", "lpips"}
    assert len(_find(tags, "div", **{"class": "explorer-message"})) == 1
    scripts = _parse(page).scripts
    assert [a.get("type") for a, _ in scripts] == ["application/json", None]  # the data, then one inline script
    assert all("src" not in a for a, _ in scripts)
    js = scripts[1][1]
    assert '"input"' in js and '"change"' in js and "querySelector" in js and "jQuery" not in js and "$(" not in js
    ids = [a["id"] for t, a in tags if "id" in a]
    assert len(ids) == len(set(ids))
    # the initial numbers are those of the default point
    default = sdedit_grid["points"][0]
    assert _text_of(page, "psnr") == f"{default['psnr']:.2f}" and _text_of(page, "lpips") == "\u2014"


def test_html_is_self_contained(sdedit_grid, dps_grid):
    for g in (sdedit_grid, dps_grid):
        page = se.render_html(g)
        assert "http" not in page and "url(" not in page  # no external URL, no CSS resource
        srcs = re.findall(r'src="([^"]*)"', page)
        assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
        assert len(page.encode("utf-8")) < ONE_MB


def test_embedded_json_round_trips(sdedit_grid, dps_grid):
    for g in (sdedit_grid, dps_grid):
        assert _embedded_grid(se.render_html(g)) == g
        embedded = _embedded_grid(se.render_html(g))
        assert len(embedded["points"]) == math.prod(len(p["values"]) for p in g["params"])  # one entry per grid point


def test_messages_cannot_break_out_of_the_page(dps_grid):
    g = json.loads(json.dumps(dps_grid))
    evil = "</script><script>alert(1)</script> & <em>"
    g["points"][len(se.NOISE_STDS)]["message"] = evil
    g["params"][0]["default"] = 1  # start on the failed point: its message is in the markup too
    page = se.render_html(g)
    assert page.count("</script>") == 2 and "<em>" not in page and "alert(1)</script>" not in page
    assert _embedded_grid(page)["points"][len(se.NOISE_STDS)]["message"] == evil


def test_failed_default_point_shows_the_message_instead_of_the_image(dps_grid):
    g = json.loads(json.dumps(dps_grid))
    g["params"][0]["default"] = 1  # ζ′ = 1e6: diverged
    page = se.render_html(g)
    tags = _parse(page).tags
    (rec,) = [a for t, a in tags if t == "img" and a.get("data-role") == "reconstruction"]
    (msg,) = _find(tags, "div", **{"class": "explorer-message"})
    assert "display:none" in rec["style"] and "display:none" not in msg.get("style", "")
    assert "No image: DPS diverged" in page
    assert _text_of(page, "psnr") == "\u2014" and _text_of(page, "lpips") == "\u2014"


def test_two_explorers_on_a_page_have_distinct_ids(dps_grid, tmp_path):
    se.save_grid(dps_grid, tmp_path / "dps.json")
    first, second = se.static_explorer("dps", tmp_path), se.static_explorer("dps", tmp_path)
    page = first._repr_html_() + second._repr_html_()
    ids = [a["id"] for t, a in _parse(page).tags if "id" in a]
    assert len(ids) == len(set(ids)) and first.root_id != second.root_id
    assert len(_find(_parse(page).tags, "div", **{"class": "static-explorer"})) == 2
    assert "4 settings, 2 failed" in repr(first)


def test_missing_grid_names_the_chapter_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        se.static_explorer("score_ald", tmp_path)
    text = str(err.value)
    assert "score_ald" in text and "python -m helpers.static_explorer --chapter score_ald" in text
    note = se.static_explorer("score_ald", tmp_path, required=False)
    assert "python -m helpers.static_explorer --chapter score_ald" in note._repr_html_()
    with pytest.raises(ValueError, match="chapter"):
        se.static_explorer("ddrm")


def test_command_line_parses_and_builds_each_chapter(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(se, "_build", lambda chapter, out, steps, index, progress: calls.append((chapter, out, steps)))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("threads", n)))
    assert se.main(["--chapter", "all", "--threads", "1", "--out", str(tmp_path), "--steps", "7", "--no-progress"]) == 0
    assert calls == [("threads", 1)] + [(c, tmp_path, 7) for c in se.CHAPTERS]
    with pytest.raises(SystemExit):
        se.main(["--chapter", "ddrm"])


# ---------------------------------------------------------------------------- the committed grids
@pytest.mark.parametrize("chapter", se.CHAPTERS)
def test_committed_grid_exists_loads_and_renders_small(chapter):
    path = se.grid_path(chapter)
    assert path.exists(), f"missing {path}: run `{se.make_command(chapter)}`"
    grid = se.load_grid(path)
    explorer = se.static_explorer(chapter)
    page = explorer._repr_html_()
    assert f'data-explorer="{chapter}"' in page and "http" not in page
    assert len(page.encode("utf-8")) < ONE_MB // 2, "keep the explorer well under 1 MB per page"
    assert _embedded_grid(page) == grid
    # the grid is the one the module's defaults describe (else it is stale: recompute it)
    spec = se.spec(chapter)
    assert [p["values"] for p in grid["params"]] == [list(p.values) for p in spec.params], se.make_command(chapter)
    assert grid["meta"]["num_steps"] == CPU_STEPS[chapter] == spec.num_steps, se.make_command(chapter)
    assert grid["meta"]["prior"] == "faces" and grid["meta"]["image_size"] == 32
    ok = [p for p in grid["points"] if p["reconstruction"] is not None]
    assert ok and all(p["lpips"] is not None and p["psnr"] is not None for p in ok)
    truth = se.decode_png(grid["images"][grid["truth"]])
    for p in ok:  # the PSNR belongs to the stored picture (two 8-bit roundings: reconstruction and truth)
        png = se.decode_png(grid["images"][p["reconstruction"]])
        rms_png = float(np.sqrt(np.mean((png - truth) ** 2)))
        assert abs(rms_png - 10 ** (-p["psnr"] / 20)) <= 2 * PNG_STEP + 1e-6
    if chapter in ("score_ald", "dps"):  # the page shows the "message in place of the image" path
        failed = [p for p in grid["points"] if p["reconstruction"] is None]
        assert failed and all("diverged" in p["message"] for p in failed)
        # the chapters say so: the largest step sizes of the grid are the ones that fail
        assert min(p["settings"]["step_size"] for p in failed) > max(p["settings"]["step_size"] for p in ok)
