"""The priors that ship in helpers/pretrained/, and the pieces of helpers.evaluate_prior (CPU, offline, fast)."""

import json
import socket

import numpy as np
import pytest
import torch

from helpers import evaluate_prior as ev
from helpers.data import mnist_digits
from helpers.priors import PRETRAINED_DIR, load_prior
from helpers.samplers import sample_ddim

SHIPPED = {"faces": (3, 32, 32), "mnist": (1, 32, 32)}
MAX_WEIGHTS_BYTES = 20 * 10**6


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails: loading must not need the network."""

    def refuse(*args, **kwargs):
        raise OSError("network access in a test that must run offline")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _prior_dir(name):
    path = PRETRAINED_DIR / name
    assert (path / "unet" / "config.json").exists(), (
        f"the shipped prior {name!r} is missing from {path}; export it with "
        f"`python -m helpers.train --dataset {name} --out {path} --export-only`"
    )
    return path


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_prior_loads_offline_and_samples(name, no_network):
    _prior_dir(name)
    prior = load_prior(name, device="cpu")
    assert prior.image_shape == SHIPPED[name]
    assert prior.device == torch.device("cpu")
    with torch.no_grad():
        x = sample_ddim(prior, num_samples=2, num_steps=5, seed=0, progress=False).sample
    assert x.shape == (2, *SHIPPED[name])
    assert torch.isfinite(x).all()
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.01  # not a constant image


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_prior_schedule_is_linear_epsilon(name):
    cfg = json.loads((_prior_dir(name) / "scheduler" / "scheduler_config.json").read_text())
    assert cfg["beta_schedule"] == "linear"
    assert cfg["beta_start"] == pytest.approx(1e-4)
    assert cfg["beta_end"] == pytest.approx(0.02)
    assert cfg["num_train_timesteps"] == 1000
    assert cfg.get("prediction_type", "epsilon") == "epsilon"
    prior = load_prior(name, device="cpu")
    assert prior.prediction_type == "epsilon"
    torch.testing.assert_close(prior.schedule.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64),
                               check_dtype=False)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_weights_are_small(name):
    files = list((_prior_dir(name) / "unet").glob("*.safetensors"))
    assert len(files) == 1, f"expected one safetensors weights file, found {files}"
    assert files[0].stat().st_size <= MAX_WEIGHTS_BYTES


# ---------------------------------------------------------------- evaluate_prior pieces
def test_nearest_neighbour_of_a_training_image_is_itself():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(300, 3, 8, 8, generator=g)
    noise = 0.01 * torch.randn(3, 8, 8, generator=g)
    queries = torch.stack([train[7], train[123], train[42] + noise])
    d, i = ev.nearest_neighbour_distances(queries, train, chunk=64)
    assert d[0] == 0.0 and d[1] == 0.0
    assert list(i) == [7, 123, 42]
    assert d[2] == pytest.approx(float(noise.double().norm()), rel=1e-6)
    brute = ((queries.reshape(3, 1, -1).double() - train.reshape(1, 300, -1).double()) ** 2).sum(-1).sqrt().min(1).values
    np.testing.assert_allclose(d, brute.numpy(), atol=1e-12)


def test_memorisation_stats_find_copies_and_mirrored_copies():
    x, _ = mnist_digits("heldout")
    train, heldout = x[:300], x[300:400]
    samples = np.concatenate([train[:3], train[5:6, ..., ::-1], heldout[:4]])
    m = ev.memorisation_stats(samples, train, heldout, hflip=True)
    assert m["near_copy_fraction"] == pytest.approx(0.5)  # the 4 copies (one mirrored), not the 4 new digits
    np.testing.assert_allclose(m["_distances"][:4], 0.0, atol=1e-9)
    assert list(m["_indices"][:4]) == [0, 1, 2, 5 + len(train)]  # index >= len(train): a mirrored training image
    assert m["near_copy_threshold"] == pytest.approx(0.25 * m["heldout_to_train_nn"]["median"])
    assert 0 < m["heldout_to_train_nn"]["median"] < m["train_pairwise_median"]
    no_flip = ev.memorisation_stats(samples, train, heldout, hflip=False)
    assert no_flip["near_copy_fraction"] == pytest.approx(3 / 8)


def test_confident_fraction_and_class_shares():
    p = np.array([[0.95, 0.05, 0.0], [0.5, 0.4, 0.1], [0.0, 0.1, 0.9], [0.2, 0.7, 0.1]])
    assert ev.confident_fraction(p) == pytest.approx(0.5)
    assert ev.confident_fraction(p, threshold=0.6) == pytest.approx(0.75)
    np.testing.assert_allclose(ev.class_shares(p, 4), [0.5, 0.25, 0.25, 0.0])
    np.testing.assert_allclose(ev.class_shares(np.array([1, 1, 3]), 4), [0, 2 / 3, 0, 1 / 3])


def test_digit_classifier_is_confident_on_real_digits():
    x, y = mnist_digits("heldout")
    clf = ev.train_digit_classifier(x[:600], y[:600], epochs=10, seed=0)  # ~4 s
    proba = clf.predict_proba(x[600:])
    assert proba.shape == (400, 10)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert clf.accuracy(x[600:], y[600:]) > 0.85
    assert ev.confident_fraction(proba) > 0.6
    assert ev.class_shares(proba, 10).min() > 0.05


def test_image_seeds_do_not_depend_on_the_batch():
    assert ev.image_seeds(3, seed=2) == [2_000_000, 2_000_001, 2_000_002]


# ---------------------------------------------------------------- the sampler grid (DDPM and DDIM at several steps)
def test_parse_grid_accepts_points_and_names_a_bad_one():
    assert ev.parse_grid(["ddpm:50", "ddim:100"]) == [("ddpm", 50), ("ddim", 100)]
    for bad in ("ddim", "euler:10", "ddim:0", "ddim:ten"):
        with pytest.raises(ValueError, match=bad):
            ev.parse_grid([bad])
    assert ("ddim", 100) in ev.DEFAULT_GRID and ("ddpm", 250) in ev.DEFAULT_GRID


def test_evaluate_prior_device_keeps_the_card_on_the_cpu(monkeypatch, capsys, tmp_path):
    """--device checks the device, and a GPU run may not overwrite the card's (CPU) figures or timing."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        ev._parse_args(["--prior", "mnist", "--device", "cuda", "--out", str(tmp_path)])
    assert "torch sees no CUDA GPU" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for argv in (["--device", "cuda"], ["--device", "cuda", "--out", str(tmp_path), "--timing"]):
        with pytest.raises(SystemExit):
            ev._parse_args(["--prior", "mnist"] + argv)
        assert "needs its own --out folder and no --timing" in capsys.readouterr().err
    assert ev._parse_args(["--prior", "mnist", "--device", "cuda", "--out", str(tmp_path)]).device == "cuda"
    assert ev._parse_args(["--prior", "mnist"]).device == "cpu"


def test_ddim_samples_are_sample_ddim_in_image_space():
    prior = load_prior("mnist", device="cpu")
    got = ev.generate_samples(prior, n=3, steps=4, seed=1, batch_size=2, progress=False, sampler="ddim")
    ref = sample_ddim(prior, num_samples=3, num_steps=4, eta=0.0, seed=ev.image_seeds(3, 1), progress=False).sample
    np.testing.assert_allclose(got, ((ref + 1) / 2).clamp(0, 1).numpy(), atol=1e-4)  # batches of 2 vs 3: float rounding
    ddpm = ev.generate_samples(prior, n=3, steps=4, seed=1, batch_size=3, progress=False, sampler="ddpm")
    assert not np.allclose(got, ddpm)  # the two samplers differ
    with pytest.raises(ValueError, match="sampler"):
        ev.generate_samples(prior, n=1, steps=2, progress=False, sampler="euler")


def test_sampler_grid_scores_each_point_and_reuses_samples(monkeypatch):
    prior = load_prior("mnist", device="cpu")
    real, _ = mnist_digits("heldout")
    drawn = []
    real_gen = ev.generate_samples

    def counting(*args, **kw):
        drawn.append((kw["sampler"], kw["steps"]))
        return real_gen(*args, **kw)

    monkeypatch.setattr(ev, "generate_samples", counting)
    reuse = {("ddpm", 3): real[:20]}  # real digits in place of DDPM samples: they must score as digits
    rows = ev.sampler_grid(prior, "mnist", [("ddpm", 3), ("ddim", 2)], n=20, progress=False, reuse=reuse)
    assert drawn == [("ddim", 2)]  # the reused point was not drawn again
    assert [(r["sampler"], r["steps"], r["n"]) for r in rows] == [("ddpm", 3, 20), ("ddim", 2, 20)]
    assert rows[0]["confident_fraction"] > 0.7  # real digits are confidently classified
    assert rows[1]["confident_fraction"] < rows[0]["confident_fraction"]  # 2 DDIM steps give noise, not digits
    for r in rows:
        assert 0 <= r["min_class_share"] <= 0.1 + 1e-9  # the rarest of 10 classes holds at most a tenth


def test_model_card_shows_the_sampler_grid(tmp_path):
    import shutil

    from helpers.model_card import render_card

    pdir = tmp_path / "mnist"
    shutil.copytree(PRETRAINED_DIR / "mnist", pdir)
    res_path = pdir / "evaluation" / "results.json"
    res = json.loads(res_path.read_text())
    res["sampler_grid"] = [
        {"sampler": "ddpm", "steps": 100, "n": 256, "seconds": 1.0, "confident_fraction": 0.871, "min_class_share": 0.06,
         "meets_targets": True},
        {"sampler": "ddim", "steps": 50, "n": 256, "seconds": 1.0, "confident_fraction": 0.70, "min_class_share": 0.07,
         "meets_targets": False},
    ]
    res_path.write_text(json.dumps(res))
    card = render_card("mnist", pdir)
    assert "## Sampler and number of steps" in card
    assert "| DDPM | 100 | 87.1 %" in card and "| DDIM (η = 0) | 50 | 70.0 %" in card
    assert "Note on the number of sampling steps" in card and "met with DDPM 100" in card
    assert "Not met with DDIM 50 (70.0 %)" in card
    assert "DDIM is below DDPM" not in card  # no common step count: no comparison is made up


def test_step_trends_are_read_off_the_grid():
    from helpers.model_card import _step_trends

    def pt(sampler, steps, conf, n=256):
        return {"sampler": sampler, "steps": steps, "confident_fraction": conf, "n": n}

    grid = [pt("ddpm", 50, 0.895), pt("ddpm", 100, 0.867), pt("ddpm", 250, 0.875),
            pt("ddim", 50, 0.805), pt("ddim", 100, 0.812), pt("ddim", 250, 0.836)]
    text = _step_trends(grid)
    # 89.5 -> 87.5 % and 80.5 -> 83.6 % of 256 samples are within two standard errors (5.6 and 6.8 pts)
    assert "DDPM's confident share stays within sampling noise from 50 to 250 steps (-2.0 pts" in text
    assert "DDIM's confident share stays within sampling noise from 50 to 250 steps (+3.1 pts" in text
    assert "rises" not in text and "falls" not in text
    # below at all three counts; beyond two standard errors only at 50 steps (9.0 > 6.3 pts)
    assert "DDIM is below DDPM at every step count, by more than two standard errors at 1 of 3" in text
    big = [pt("ddim", 50, 0.60, 2000), pt("ddim", 100, 0.70, 2000), pt("ddim", 250, 0.80, 2000)]
    assert "DDIM's confident share rises with the number of steps (beyond two standard errors)" in _step_trends(big)
    zigzag = [pt("ddim", 50, 0.60, 2000), pt("ddim", 100, 0.90, 2000), pt("ddim", 250, 0.80, 2000)]
    assert "no steady trend" in _step_trends(zigzag)
    grid[4]["confident_fraction"] = 0.9  # DDIM 100 above DDPM 100: no "every step count" sentence
    assert "DDPM at every step count" not in _step_trends(grid)


def test_model_card_lists_every_run_behind_continued_weights(tmp_path):
    import shutil

    from helpers.model_card import render_card, training_history

    pdir = tmp_path / "mnist"
    shutil.copytree(PRETRAINED_DIR / "mnist", pdir)
    info_path = pdir / "training_info.json"
    info = json.loads(info_path.read_text())
    first = {"path": "a", "steps": 100, "wall_seconds": 60.0, "lr": 1e-3, "ema_decay": 0.999, "params": 10,
             "command": "python -m helpers.train FIRST", "initialised_from": None}
    second = {"path": "b", "steps": 200, "wall_seconds": 120.0, "lr": 2e-4, "ema_decay": 0.9995, "params": 10,
              "command": "python -m helpers.train SECOND", "initialised_from": first, "deepened": "layers 1 -> 2"}
    info.update(initialised_from=second, steps=300, wall_seconds=180.0, lr=5e-5,
                resume_overrides=[{"at_step": 250, "changes": {"lr": {"checkpoint": 2e-4, "now": 5e-5}}}])
    info_path.write_text(json.dumps(info))
    runs = training_history(info)
    assert [r["steps"] for r in runs] == [100, 200, 300]  # oldest first
    assert runs[2]["deepened"] == "layers 1 -> 2"  # the deepening is told at the run that did it
    card = render_card("mnist", pdir)
    # the run that deepened, the resume that lowered its learning rate, then its (last) command
    assert ("| layers 1 -> 2; resumed at step 250 with lr 0.0002 → 5e-05 (`--override`); `" + info["command"] + "` |"
            in card)
    assert "| 0.0002, 5e-05 from step 250 |" in card  # the last export records only the final lr; both are shown
    assert "| 0.001 |" in card and "| 0.0002 |" in card  # runs without a change show their one value
    reproduce = card.split("## Reproduce\n")[1]
    assert reproduce.index("helpers.train FIRST") < reproduce.index("helpers.train SECOND") < reproduce.index(info["command"])
    assert "then with `--override`" in reproduce
    assert "In all 600 steps, 6 min of CPU training" in card
    assert "`python -m helpers.train FIRST`" in card and "`python -m helpers.train SECOND`" in card
    plain = json.loads((PRETRAINED_DIR / "mnist" / "training_info.json").read_text())
    plain["initialised_from"] = None
    assert training_history(plain) == [dict(plain, deepened=None)]


def test_model_card_says_when_the_weights_are_an_average_of_exports(tmp_path):
    import shutil

    from helpers.model_card import render_card

    pdir = tmp_path / "mnist"
    shutil.copytree(PRETRAINED_DIR / "mnist", pdir)
    info_path = pdir / "training_info.json"
    info = json.loads(info_path.read_text())
    info.pop("averaged_from", None), info.pop("average_command", None), info.update(weights="EMA")
    info_path.write_text(json.dumps(info))
    assert "averaged" not in render_card("mnist", pdir).split("## Training\n")[1].split("## Evaluation")[0]
    info.update(averaged_from=[{"path": "a", "steps_in_run": 4681}, {"path": "b", "steps_in_run": 10234}],
                average_command="python -m helpers.average_priors a b --out c")
    info_path.write_text(json.dumps(info))
    card = render_card("mnist", pdir)
    assert ("| averaged | the weights are the mean of the EMA weights exported at steps 4,681, 10,234 of this run "
            "(`python -m helpers.average_priors a b --out c`) |") in card
    assert "averaged EMA weights, float32" in card
    reproduce = card.split("## Reproduce\n")[1].split("## Limitations")[0]
    assert "then average the exports" in reproduce
    assert reproduce.index(info["command"]) < reproduce.index("python -m helpers.average_priors a b --out c")
    assert f"--steps {info['steps']} " not in reproduce  # one command with --steps would not give these weights
