"""helpers.average_priors: the mean of several exports of one run is an ordinary, loadable prior."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import average_priors as A
from helpers import priors as P
from helpers import train as T

TINY = dict(sample_size=16, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8)


def _export(tmp_path, name, steps, **model):
    images = np.random.default_rng(0).random((16, 1, 16, 16)).astype(np.float32)
    out = tmp_path / name
    T.train(T.TrainConfig(dataset="custom", images=images, model_config=dict(TINY, **model), batch_size=4, lr=2e-3,
                          warmup_steps=1, checkpoint_dir=str(tmp_path / "ck"), progress=False, seed=0, steps=steps,
                          out=str(out), command=f"python -m helpers.train RUN {name}"))
    return out


def test_the_average_is_the_mean_of_the_weights_and_loads_as_a_prior(tmp_path):
    first, second = _export(tmp_path, "at2", 2), _export(tmp_path, "at4", 4)  # one run, resumed: two exports
    w1, w2 = (load_file(str(d / A.WEIGHTS)) for d in (first, second))
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)  # training moved the weights between the exports
    out = A.average_priors([str(first), str(second)], str(tmp_path / "soup"), command="python -m helpers.average_priors X")
    avg = load_file(str(out / A.WEIGHTS))
    for k in w1:  # the closed form, per tensor
        torch.testing.assert_close(avg[k], (w1[k].double() + w2[k].double()).div(2).float(), rtol=0, atol=1e-7)
    info = json.loads((out / "training_info.json").read_text())
    assert [s["steps_in_run"] for s in info["averaged_from"]] == [2, 4]
    assert info["command"] == "python -m helpers.train RUN at4"  # the last source's training record is kept
    assert info["average_command"] == "python -m helpers.average_priors X"
    prior = P.load_prior(out, device="cpu")  # the hash was recorded for the new weights
    x = torch.zeros(1, 1, 16, 16)
    assert torch.isfinite(prior.unet(x, 10).sample).all()


def test_averaging_a_prior_with_itself_changes_nothing(tmp_path):
    first = _export(tmp_path, "at2", 2)
    out = A.average_priors([str(first), str(first)], str(tmp_path / "same"))
    w, same = load_file(str(first / A.WEIGHTS)), load_file(str(out / A.WEIGHTS))
    assert all(torch.equal(w[k], same[k]) for k in w)


def test_bad_sources_are_refused_with_the_argument_and_the_fix(tmp_path):
    first = _export(tmp_path, "at2", 2)
    with pytest.raises(ValueError, match="sources: got 1 folder"):
        A.average_priors([str(first)], str(tmp_path / "x"))
    with pytest.raises(FileNotFoundError, match="not an exported prior"):
        A.average_priors([str(first), str(tmp_path)], str(tmp_path / "x"))
    other = _export(tmp_path / "b", "wide", 1, block_out_channels=(16, 16))
    with pytest.raises(ValueError, match="another network.*block_out_channels"):
        A.average_priors([str(first), str(other)], str(tmp_path / "x"))
    with pytest.raises(ValueError, match="--force"):
        A.average_priors([str(first), str(first)], str(T.PRETRAINED_DIR / "mnist"))
    with pytest.raises(SystemExit, match="python -m helpers.average_priors: error: sources: got 1"):
        A.main([str(first), "--out", str(tmp_path / "x")])
