"""Reliability: bad inputs get clear errors naming the argument or file, caches heal, data files run no code.

Covers helpers._util (scalar validators), helpers.train (checkpoints, untrained exports,
changed settings on resume, flag validation), helpers.priors (weights hash, broken JSON),
helpers.data and helpers.face_measures (corrupt caches), helpers.widgets (bad settings),
helpers.samplers / operators / schedule (runaway iterates caught by the divergence bound, images and
measurements range- and NaN-checked, integer tensors refused, empty batches, numpy/torch scalars).
The evaluation folder's fingerprint and lock are tested in test_evaluate.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import _util
from helpers import data as D
from helpers import face_measures as M
from helpers import priors as P
from helpers import train as T

HELPERS = Path(__file__).resolve().parent.parent / "helpers"

TINY = dict(sample_size=16, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=8)


def _images(n: int = 24) -> np.ndarray:
    return np.random.default_rng(0).random((n, 1, 16, 16)).astype(np.float32)


def _config(tmp_path, name: str = "ck", **kw) -> T.TrainConfig:
    base = dict(dataset="custom", images=_images(), model_config=TINY, batch_size=8, lr=2e-3, warmup_steps=2,
                checkpoint_dir=str(tmp_path / name), progress=False, seed=0)
    base.update(kw)
    return T.TrainConfig(**base)


# --------------------------------------------------------------------------- no code from data files
BANNED = ["weights_only=False", "pickle.load", "joblib.load", "allow_pickle=True"]


def test_no_unsafe_loading_in_helpers():
    """No module of helpers/ loads data with a call that can run code from the file."""
    hits = []
    for path in sorted(HELPERS.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in BANNED:
            for m in re.finditer(re.escape(pattern).replace(r"\ ", r"\s*").replace("=", r"\s*=\s*"), text):
                line = text.count("\n", 0, m.start()) + 1
                hits.append(f"{path.relative_to(HELPERS.parent)}:{line}: {pattern}")
    assert not hits, "unsafe loading:\n" + "\n".join(hits)


def test_the_scan_finds_what_it_bans(tmp_path):
    """The patterns of the scan match the spellings people write (so the test above could fail)."""
    for code in ["torch.load(p, weights_only = False)", "pickle.load(fh)", "joblib.load(path)",
                 "np.load(p, allow_pickle=True)"]:
        assert any(re.search(re.escape(b).replace("=", r"\s*=\s*"), code) for b in BANNED), code


# --------------------------------------------------------------------------- scalars
@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), torch.tensor(3), torch.tensor(3.0), 3.0, np.array(3)])
def test_as_int_accepts_numpy_and_torch_scalars(value):
    assert _util.as_int(value, "n", positive=True) == 3
    assert type(_util.as_int(value, "n")) is int


@pytest.mark.parametrize("value", [0.5, np.float32(0.5), torch.tensor(0.5), np.array(0.5)])
def test_as_float_accepts_numpy_and_torch_scalars(value):
    v = _util.as_float(value, "x", positive=True)
    assert v == 0.5 and type(v) is float


@pytest.mark.parametrize("call, error", [
    (lambda: _util.as_int(2**64, "seed", min=0, max=2**32 - 1), ValueError),
    (lambda: _util.as_int(0, "seed", positive=True), ValueError),
    (lambda: _util.as_int(2.5, "seed"), ValueError),
    (lambda: _util.as_int(float("nan"), "seed"), ValueError),
    (lambda: _util.as_int(True, "seed"), TypeError),
    (lambda: _util.as_int("3", "seed"), TypeError),
    (lambda: _util.as_int(torch.ones(2), "seed"), TypeError),
    (lambda: _util.as_float(float("nan"), "seed"), ValueError),
    (lambda: _util.as_float(float("inf"), "seed", positive=True), ValueError),
    (lambda: _util.as_float(1.0, "seed", min=0, max=1, max_open=True), ValueError),
    (lambda: _util.as_float(None, "seed"), TypeError),
])
def test_bad_scalars_name_the_argument(call, error):
    with pytest.raises(error, match="seed"):
        call()


# --------------------------------------------------------------------------- train: bad settings
@pytest.mark.parametrize("field, value, error, names", [
    ("batch_size", 0, ValueError, "--batch-size"),
    ("batch_size", 25, ValueError, "--batch-size"),  # more than the 24 images
    ("batch_size", 2.5, ValueError, "--batch-size"),
    ("ema_decay", 1.0, ValueError, "--ema-decay"),
    ("ema_decay", -0.1, ValueError, "--ema-decay"),
    ("ema_decay", float("nan"), ValueError, "--ema-decay"),
    ("seed", 2**64, ValueError, "--seed"),
    ("seed", -1, ValueError, "--seed"),
    ("lr", 0.0, ValueError, "--lr"),
    ("steps", -1, ValueError, "--steps"),
    ("warmup_steps", -5, ValueError, "--warmup-steps"),
    ("threads", 0, ValueError, "--threads"),
    ("dataset", "cifar", ValueError, "--dataset"),
])
def test_train_rejects_bad_settings_naming_the_flag(tmp_path, field, value, error, names):
    cfg = _config(tmp_path, checkpoint_dir="", **dict({"steps": 1}, **{field: value}))
    with pytest.raises(error, match=re.escape(names)):
        T.train(cfg)


@pytest.mark.parametrize("kw", [
    dict(batch_size=np.int64(8), seed=np.int64(1), steps=torch.tensor(2), ema_decay=np.float32(0.9)),
    dict(batch_size=torch.tensor(8), lr=torch.tensor(1e-3), steps=np.int32(2), max_minutes=np.float64(5.0)),
])
def test_train_accepts_numpy_and_torch_scalars(tmp_path, kw):
    res = T.train(_config(tmp_path, checkpoint_dir="", **kw))
    assert res.step == 2


@pytest.mark.parametrize("argv, flag", [
    (["--steps", "0"], "--steps"),
    (["--max-minutes", "0"], "--max-minutes"),
    (["--steps", "5", "--batch-size", "0"], "--batch-size"),
    (["--steps", "5", "--ema-decay", "1.0"], "--ema-decay"),
    (["--steps", "5", "--seed", str(2**64)], "--seed"),
    (["--steps", "5", "--lr", "nan"], "--lr"),
    (["--export-only", "--no-resume"], "--no-resume"),
])
def test_cli_rejects_bad_flags_before_training(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        T.main(["--dataset", "mnist", "--out", "unused_out", *argv])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


# --------------------------------------------------------------------------- train: no untrained exports
@pytest.mark.parametrize("kw", [dict(steps=0), dict(max_minutes=0.0), dict(steps=0, checkpoint_dir="")])
def test_train_refuses_to_export_untrained_weights(tmp_path, kw):
    out = tmp_path / "prior"
    with pytest.raises(ValueError, match="untrained"):
        T.train(_config(tmp_path, out=str(out), **kw))
    assert not (out / "unet").exists()


def test_export_only_without_a_checkpoint_is_an_error(tmp_path):
    ckpt = tmp_path / "empty"
    with pytest.raises(SystemExit) as exc:
        T.main(["--dataset", "mnist", "--out", str(tmp_path / "out"), "--export-only", "--checkpoint-dir", str(ckpt)])
    assert exc.value.code != 0 and str(ckpt) in str(exc.value.code)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sub", ["", "mnist", "faces", "new_prior/unet"])
def test_export_into_shipped_priors_needs_force(tmp_path, sub):
    out = T.PRETRAINED_DIR / sub
    with pytest.raises(ValueError, match="--force"):
        T.train(_config(tmp_path, steps=1, out=str(out), checkpoint_dir=""))
    # the refusal comes before any training or writing
    assert not (T.PRETRAINED_DIR / "new_prior").exists()


def test_cli_names_the_problem_without_a_traceback(tmp_path, capsys):
    """--out into a shipped prior from the command line: SystemExit with the message, no ValueError traceback."""
    with pytest.raises(SystemExit) as exc:
        T.main(["--dataset", "mnist", "--out", "helpers/pretrained/mnist", "--steps", "1",
                "--checkpoint-dir", str(tmp_path / "ck")])
    assert "--force" in str(exc.value.code) and str(exc.value.code).startswith("python -m helpers.train: error:")


def test_force_allows_a_folder_under_pretrained(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "PRETRAINED_DIR", tmp_path / "pretrained")
    out = tmp_path / "pretrained" / "mine"
    res = T.train(_config(tmp_path, steps=1, out=str(out), checkpoint_dir="", force=True))
    assert res.out == out and (out / "weights.sha256").exists()
    info = json.loads((out / "training_info.json").read_text())
    assert info["weights_sha256"] == (out / "weights.sha256").read_text().split()[0]


# --------------------------------------------------------------------------- train: checkpoints
def test_checkpoint_is_safetensors_and_round_trips_exactly(tmp_path):
    res = T.train(_config(tmp_path, steps=3, hflip=True))
    path = tmp_path / "ck" / T.CHECKPOINT_NAME
    assert path.exists() and not (tmp_path / "ck" / "checkpoint.pt").exists()
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle (b"\x80")
    s = T.load_checkpoint(path)
    assert s["step"] == 3 and len(s["log"]) == 3
    ema = res.ema_model.state_dict()
    assert set(s["ema"]) == set(ema)
    for k, v in ema.items():
        assert torch.equal(v, s["ema"][k]) and v.dtype == s["ema"][k].dtype, k


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "json"])
def test_corrupt_checkpoint_names_the_file_and_no_resume(tmp_path, damage):
    T.train(_config(tmp_path, steps=2))
    path = tmp_path / "ck" / T.CHECKPOINT_NAME
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x80\x04garbage" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # valid safetensors, broken JSON metadata
        from safetensors.torch import save

        path.write_bytes(save({"x": torch.zeros(1)}, metadata={"checkpoint": "{not json"}))
    with pytest.raises(T.CheckpointError) as exc:
        T.train(_config(tmp_path, steps=4))
    assert str(path) in str(exc.value) and "--no-resume" in str(exc.value)
    # and --no-resume does start anew
    assert T.train(_config(tmp_path, steps=1, resume=False)).step == 1


def test_legacy_pickle_checkpoint_is_read_without_running_code(tmp_path):
    """A checkpoint.pt of the earlier version still resumes (weights-only unpickler), and one that would run code is refused."""
    full = T.train(_config(tmp_path, "full", steps=4))
    T.train(_config(tmp_path, "old", steps=2))
    s = T.load_checkpoint(tmp_path / "old" / T.CHECKPOINT_NAME)
    (tmp_path / "old" / T.CHECKPOINT_NAME).unlink()
    torch.save(s, tmp_path / "old" / "checkpoint.pt")  # the old format (numpy RNG state included)
    cont = T.train(_config(tmp_path, "old", steps=4))
    for a, b in zip(full.model.state_dict().values(), cont.model.state_dict().values()):
        assert torch.equal(a, b)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    torch.save({"model": Evil()}, evil_dir / "checkpoint.pt")
    with pytest.raises(T.CheckpointError, match=re.escape(str(evil_dir / "checkpoint.pt"))):
        T.train(_config(tmp_path, "evil", steps=1))


@pytest.mark.parametrize("field, value, flag", [
    ("lr", 1e-3, "--lr"), ("seed", 1, "--seed"), ("batch_size", 4, "--batch-size"), ("ema_decay", 0.99, "--ema-decay"),
    ("warmup_steps", 7, "--warmup-steps"), ("hflip", True, "hflip"),
])
def test_resume_with_changed_settings_needs_override(tmp_path, field, value, flag):
    T.train(_config(tmp_path, steps=2))
    with pytest.raises(ValueError, match=re.escape(flag)) as exc:
        T.train(_config(tmp_path, steps=3, **{field: value}))
    assert "--override" in str(exc.value)
    res = T.train(_config(tmp_path, steps=3, out=str(tmp_path / "out"), override=True, **{field: value}))
    assert res.step == 3
    info = json.loads((tmp_path / "out" / "training_info.json").read_text())
    (record,) = info["resume_overrides"]
    assert record["at_step"] == 2 and field in record["changes"]
    assert record["changes"][field]["now"] == value
    # the override is kept in the checkpoint: resuming again with the new value needs no flag
    assert T.train(_config(tmp_path, steps=4, **{field: value})).step == 4


def test_export_only_uses_the_checkpoint_settings(tmp_path, monkeypatch):
    """--export-only of a run made with other settings than the command-line defaults exports, no override needed."""
    ckpt = tmp_path / "ck"
    T.train(_config(tmp_path, steps=2, lr=5e-4, ema_decay=0.99))
    monkeypatch.setattr(T, "load_images", lambda config, progress=True: torch.as_tensor(_images()) * 2 - 1)
    res = T.main(["--dataset", "mnist", "--out", str(tmp_path / "out"), "--export-only", "--checkpoint-dir", str(ckpt),
                  "--no-progress"])
    assert res.step == 2
    info = json.loads((tmp_path / "out" / "training_info.json").read_text())
    assert info["lr"] == 5e-4 and info["ema_decay"] == 0.99 and info["resume_overrides"] is None


def test_export_only_keeps_the_training_command_and_the_initialisation(tmp_path, monkeypatch):
    """An exported continuation still says what it continued and which command trained it (not the export)."""
    T.train(_config(tmp_path, steps=2, out=str(tmp_path / "first"), checkpoint_dir=str(tmp_path / "ck1")))
    T.train(_config(tmp_path, steps=2, init_from=str(tmp_path / "first"), command="python -m helpers.train CONTINUE",
                    checkpoint_dir=str(tmp_path / "ck2")))
    monkeypatch.setattr(T, "load_images", lambda config, progress=True: torch.as_tensor(_images()) * 2 - 1)
    T.main(["--dataset", "mnist", "--out", str(tmp_path / "out"), "--export-only", "--checkpoint-dir",
            str(tmp_path / "ck2"), "--no-progress"])
    info = json.loads((tmp_path / "out" / "training_info.json").read_text())
    assert info["command"] == "python -m helpers.train CONTINUE"
    assert info["initialised_from"]["path"] == str(tmp_path / "first")
    assert info["initialised_from"]["steps"] == 2


def test_a_continuation_remembers_the_overrides_of_the_run_it_continues(tmp_path):
    """The model card's history shows a learning rate lowered mid-run only if the next run's record keeps it."""
    T.train(_config(tmp_path, steps=2, checkpoint_dir=str(tmp_path / "ck1")))
    T.train(_config(tmp_path, steps=3, lr=1e-3, override=True, out=str(tmp_path / "first"),
                    checkpoint_dir=str(tmp_path / "ck1")))
    T.train(_config(tmp_path, steps=1, init_from=str(tmp_path / "first"), out=str(tmp_path / "second"),
                    checkpoint_dir=str(tmp_path / "ck2")))
    first = json.loads((tmp_path / "first" / "training_info.json").read_text())
    second = json.loads((tmp_path / "second" / "training_info.json").read_text())
    (record,) = second["initialised_from"]["resume_overrides"]
    assert record == first["resume_overrides"][0] and record["at_step"] == 2
    assert record["changes"]["lr"]["now"] == 1e-3 and second["resume_overrides"] is None


# --------------------------------------------------------------------------- priors
@pytest.fixture
def exported_prior(tmp_path):
    out = tmp_path / "prior"
    T.train(_config(tmp_path, steps=1, out=str(out), checkpoint_dir=""))
    return out


def test_shipped_priors_record_their_hash():
    for name in P.BUNDLED_PRIORS:
        folder = P.PRETRAINED_DIR / name
        assert P.verify_weights_sha256(folder, required=True) == _util.file_sha256(folder / P.WEIGHTS_FILE)


@pytest.mark.parametrize("damage", ["flip", "truncate", "hash"])
def test_weights_that_do_not_match_their_hash_name_the_file(exported_prior, damage):
    weights = exported_prior / P.WEIGHTS_FILE
    assert P.load_prior(exported_prior, device="cpu") is not None
    if damage == "flip":
        raw = bytearray(weights.read_bytes())
        raw[-10] ^= 0xFF
        weights.write_bytes(bytes(raw))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-100])
    else:
        (exported_prior / P.SHA256_FILE).write_text("0" * 64 + "  " + P.WEIGHTS_FILE + "\n")
    with pytest.raises(P.PriorNotAvailableError, match=re.escape(str(weights))):
        P.load_prior(exported_prior, device="cpu")


def test_bundled_prior_checks_its_hash(tmp_path, monkeypatch):
    fake = tmp_path / "pretrained"
    shutil.copytree(P.PRETRAINED_DIR / "mnist", fake / "mnist", ignore=shutil.ignore_patterns("evaluation", "*.png"))
    monkeypatch.setattr(P, "PRETRAINED_DIR", fake)
    assert P.load_prior("mnist", device="cpu").name == "mnist"
    (fake / "mnist" / P.SHA256_FILE).unlink()
    # training_info.json's copy of the hash still guards the weights ...
    assert P.verify_weights_sha256(fake / "mnist", required=True) == _util.file_sha256(fake / "mnist" / P.WEIGHTS_FILE)
    info_path = fake / "mnist" / "training_info.json"
    info = json.loads(info_path.read_text())
    info.pop("weights_sha256", None)
    info_path.write_text(json.dumps(info))
    # ... and with neither record the bundled prior refuses to load
    with pytest.raises(P.PriorNotAvailableError, match="weights.sha256"):
        P.load_prior("mnist", device="cpu")


@pytest.mark.parametrize("which, text", [
    ("scheduler/scheduler_config.json", "{not json"),
    ("scheduler/scheduler_config.json", "[1, 2]"),
    ("unet/config.json", "\x00\x01 garbage"),
])
def test_config_that_is_not_json_names_the_file(exported_prior, which, text):
    (exported_prior / which).write_text(text)
    with pytest.raises(P.PriorNotAvailableError, match=re.escape(str(exported_prior / which))):
        P.load_prior(exported_prior, device="cpu")


# --------------------------------------------------------------------------- caches heal
def _damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if how == "truncate" else b"" if how == "empty" else b"PK\x03\x04" + b"x" * 50)


@pytest.mark.parametrize("how", ["truncate", "empty", "garbage"])
def test_corrupt_face_cache_is_regenerated_with_a_warning(tmp_path, how):
    imgs, attrs = D.face_dataset("train", n=3, cache_dir=tmp_path, progress=False)
    (path,) = (tmp_path / "data").glob("faces_*.npz")
    _damage(path, how)
    with pytest.warns(RuntimeWarning, match=re.escape(str(path))):
        again, attrs2 = D.face_dataset("train", n=3, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again, imgs)
    np.testing.assert_array_equal(attrs2["eyes"], attrs["eyes"])
    with np.load(path, allow_pickle=False) as z:  # healed
        assert z["images"].shape == (3, 3, 32, 32)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    cache = tmp_path_factory.mktemp("faces-cache")
    return cache, D.face_dataset("train", n=120, cache_dir=cache, progress=False)


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_classifiers_saved_as_arrays_predict_the_same(faces, tmp_path, kind):
    _, (x, attrs) = faces
    clf = M.train_attribute_classifiers(x, attrs, model=kind)
    path = M.save_classifiers(clf, tmp_path / "c.npz")
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)
    back = M.load_classifiers(path)
    p1, p2 = clf.predict_proba(x[:40]), back.predict_proba(x[:40])
    for a in p1:
        np.testing.assert_array_equal(p1[a], p2[a])
    assert back.boxes == clf.boxes and back.info == clf.info


@pytest.mark.parametrize("how", ["truncate", "empty", "garbage"])
def test_corrupt_classifier_cache_is_retrained_with_a_warning(faces, how):
    cache, _ = faces
    first = M.load_or_train_classifiers(cache_dir=cache, n_train=120, n_test=20, progress=False)
    (path,) = (cache / "models").glob("face_classifiers_*.npz")
    _damage(path, how)
    with pytest.warns(RuntimeWarning, match=re.escape(str(path))):
        again = M.load_or_train_classifiers(cache_dir=cache, n_train=120, n_test=20, progress=False)
    assert again.test_accuracy == first.test_accuracy
    M.load_classifiers(path)  # healed


# --------------------------------------------------------------------------- widgets
@pytest.fixture
def image():
    return torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(t0=float("nan")), ValueError, "t0"),
    (dict(t0=2.0), ValueError, "t0"),
    (dict(t0="0.5"), TypeError, "t0"),
    (dict(operator="nope"), ValueError, "operator"),
    (dict(num_steps=0), ValueError, "num_steps"),
    (dict(repeats=0), ValueError, "repeats"),
    (dict(noise_std=float("nan")), ValueError, "noise_std"),
])
def test_sdedit_explorer_bad_arguments(tiny_prior, image, kwargs, error, name):
    pytest.importorskip("ipywidgets")
    from helpers.widgets import sdedit_explorer

    with pytest.raises(error, match=name):
        sdedit_explorer(tiny_prior, image, lpips=False, **kwargs)


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(step_range=(0, 1)), ValueError, r"step_range\[0\]"),
    (dict(step_range=(1.0, 0.1)), ValueError, "step_range"),
    (dict(step_range=(1e-3, float("inf"))), ValueError, r"step_range\[1\]"),
    (dict(step_range=5), ValueError, "step_range"),
    (dict(step_size=float("nan")), ValueError, "step_size"),
    (dict(step_size=1e9), ValueError, "step_size"),
    (dict(seed=-1), ValueError, "seed"),
])
def test_step_size_explorer_bad_arguments(tiny_prior, image, kwargs, error, name):
    pytest.importorskip("ipywidgets")
    from helpers.widgets import step_size_explorer

    with pytest.raises(error, match=name):
        step_size_explorer(tiny_prior, image, num_steps=2, lpips=False, **kwargs)


@pytest.mark.parametrize("settings, name", [
    (dict(operator="nope"), "operator"),
    (dict(t0=float("nan")), "t0"),
    (dict(t0=5.0), "t0"),
    (dict(strength=0.33), "strength"),
    (dict(operator="SR", strength=3), "strength"),
])
def test_sdedit_update_bad_settings_change_nothing(tiny_prior, image, settings, name):
    pytest.importorskip("ipywidgets")
    from helpers.widgets import sdedit_explorer

    ex = sdedit_explorer(tiny_prior, image, num_steps=4, lpips=False)
    before, runs = ex.settings(), ex.num_runs
    with pytest.raises(ValueError, match=name):
        ex.update(**settings)
    assert ex.settings() == before and ex.num_runs == runs  # nothing half-applied
    ex.update(operator="SR", strength=np.int64(2), t0=torch.tensor(0.6))  # numpy / torch values work
    assert ex.settings() == {"t0": 0.6, "operator": "SR", "strength": 2}


def test_step_size_update_bad_settings(tiny_prior, image):
    pytest.importorskip("ipywidgets")
    from helpers.widgets import step_size_explorer

    ex = step_size_explorer(tiny_prior, image, num_steps=2, lpips=False, step_range=(1e-3, 1e-1))
    assert 1e-3 <= ex.settings()["step_size"] <= 1e-1  # the default 1.0 is outside: start inside the range
    for bad, name in [(dict(step_size=10.0), "step_size"), (dict(step_size=float("nan")), "step_size"),
                      (dict(seed=2.5), "seed")]:
        with pytest.raises(ValueError, match=name):
            ex.update(**bad)


# =========================================================================== samplers, operators, schedule
from helpers import operators as O  # noqa: E402
from helpers import samplers as S  # noqa: E402
from helpers.schedule import NoiseSchedule  # noqa: E402


def _x(n=1):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _y(op=None, n=1):
    op = op or O.BoxInpainting(8, 4)
    return op.measure(torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1, 0.05, seed=0)


# --------------------------------------------------------------------------- divergence caught by size
@pytest.fixture(scope="module")
def faces_prior():
    return P.load_prior("faces", device="cpu")


@pytest.fixture(scope="module")
def faces_truth():
    return D.to_model_space(torch.as_tensor(D.face_dataset("test", size=32, n=1, progress=False)[0][:1]))


@pytest.mark.parametrize("method, kwargs, param", [
    ("dps", dict(step_size=1e3), "ζ′=1000"),
    ("dps", dict(step_size=1e6), "ζ′=1e+06"),
    ("score_ald", dict(step_size=1.0, step_rule="poster", likelihood_weight="orthonormal"), "step_rule='poster'"),
    ("score_ald", dict(step_size=1.0, step_rule="poster"), "step_rule='poster'"),
])
def test_runaway_step_sizes_raise_diverged_by_size(faces_prior, faces_truth, method, kwargs, param):
    """On the bundled faces prior (deblurring, 50 steps) these settings used to return saturated 5-7 dB images."""
    from helpers.evaluation.tasks import build_task

    op = build_task("deblur", 32).operator
    y = op.measure(faces_truth, noise_std=0.05, seed=0)
    with pytest.raises(S.SamplerDivergedError) as err:
        getattr(S, method)(faces_prior, op, y, num_steps=50, seed=[0], progress=False, **kwargs)
    msg = str(err.value)
    assert param in msg and "timestep t=" in msg and "smaller" in msg
    assert ("RMS" in msg) or ("NaN" in msg)


@pytest.mark.parametrize("method, kwargs", [
    ("dps", dict(step_size=1.0)), ("dps", dict(step_size=30.0)), ("score_ald", dict(step_size=1.0)),
    ("score_ald", dict(step_size=1e-3, step_rule="poster", likelihood_weight="orthonormal")),
])
def test_healthy_runs_stay_far_below_the_bound(faces_prior, faces_truth, method, kwargs):
    from helpers.evaluation.tasks import build_task

    op = build_task("box", 32).operator
    y = op.measure(faces_truth, noise_std=0.05, seed=0)
    r = getattr(S, method)(faces_prior, op, y, num_steps=50, seed=[0], progress=False, **kwargs)
    assert r.info["rms_iterate_ratio"] < S.DIVERGENCE_FACTOR / 3


def test_dps_caught_by_size_before_any_nan(tiny_prior):
    """ζ′ = 1e6 on a tiny net: finite but runaway; the message gives the RMS, not NaN."""
    op = O.BoxInpainting(8, 4)
    with pytest.raises(S.SamplerDivergedError, match=r"RMS of x_t .* more than 100× .* step_size ζ′=1e\+06|"
                                                     r"step_size ζ′=1e\+06.*RMS"):
        S.dps(tiny_prior, op, _y(op), num_steps=4, step_size=1e6, progress=False)


def test_divergence_bound_follows_the_schedule():
    sched = NoiseSchedule.linear()
    assert S.divergence_bound(sched, -1) == pytest.approx(S.DIVERGENCE_FACTOR)
    a = sched.alpha_bar(500)
    assert S.divergence_bound(sched, 500) == pytest.approx(S.DIVERGENCE_FACTOR * (a**0.5 + (1 - a) ** 0.5))


# --------------------------------------------------------------------------- bad images and measurements
_NAN = torch.full((1, 3, 8, 8), float("nan"))
_255 = torch.full((1, 3, 8, 8), 200.0)
_HALF = torch.full((1, 3, 8, 8), 2.5)


@pytest.mark.parametrize("call, error, names", [
    (lambda p: S.sdedit(p, O.Denoising(), _y(), start_image=_NAN, progress=False), ValueError, ["start_image", "NaN"]),
    (lambda p: S.sdedit(p, O.Denoising(), _y(), start_image=_255, progress=False), ValueError, ["start_image", "0..255"]),
    (lambda p: S.sdedit(p, O.Denoising(), _255, progress=False), ValueError, ["measurement", "0..255"]),
    (lambda p: S.sdedit(p, O.Denoising(), _y(), start_image=_y().to(torch.uint8), progress=False), TypeError,
     ["start_image", "uint8"]),
    (lambda p: S.dps(p, O.Denoising(), _NAN, progress=False), ValueError, ["measurement", "NaN"]),
    (lambda p: S.dps(p, O.Denoising(), _HALF, progress=False), ValueError, ["measurement", "accepted: [-2, 2]"]),
    (lambda p: S.dps(p, O.Denoising(), _255.to(torch.uint8), progress=False), TypeError, ["measurement", "uint8"]),
    (lambda p: S.score_ald(p, O.Denoising(), _255, progress=False), ValueError, ["measurement", "0..255"]),
    (lambda p: S.score_ald(p, O.Denoising(), torch.full((1, 3, 8, 8), -5.0), progress=False), ValueError,
     ["measurement", "not a model-space image"]),
    (lambda p: S.sample_ddim(p, 1, num_steps=2, eta=float("nan"), progress=False), ValueError, ["eta"]),
    (lambda p: S.sample_ddim(p, 1, num_steps=2, eta=-1, progress=False), ValueError, ["eta"]),
    (lambda p: S.score_ald(p, O.Denoising(), _y(), noise_std=float("nan"), progress=False), ValueError, ["noise_std"]),
    (lambda p: S.sdedit(p, O.Denoising(), _y(), start_time=float("nan"), progress=False), ValueError, ["start_time"]),
    (lambda p: O.Denoising().measure(_255), ValueError, ["x", "0..255"]),
    (lambda p: O.GaussianBlur(3, 1).measure(_255 / 150), ValueError, ["x", "[0, 1] image space"]),
    (lambda p: O.GaussianBlur(3, 1).measure(_NAN), ValueError, ["x", "NaN"]),
    (lambda p: O.Denoising().measure(_x(), noise_std=float("nan")), ValueError, ["noise_std"]),
    (lambda p: O.GaussianNoise(float("inf")), ValueError, ["std"]),
])
def test_bad_images_and_measurements_name_the_argument(tiny_prior, call, error, names):
    with pytest.raises(error) as err:
        call(tiny_prior)
    for name in names:
        assert name in str(err.value), (name, str(err.value))


# --------------------------------------------------------------------------- [0, 1] image space inside [-1, 1]
@pytest.fixture(scope="module")
def held_out_faces():
    """The first 32 held-out faces, model space [-1, 1] (what the chapters and the evaluation use)."""
    return D.to_model_space(torch.as_tensor(D.face_dataset("test", size=32, n=32, progress=False)[0]))


@pytest.mark.parametrize("call, name", [
    (lambda p, y, x: S.sdedit(p, O.GaussianBlur(9, 1), (y + 1) / 2, num_steps=4, progress=False), "measurement"),
    (lambda p, y, x: S.score_ald(p, O.GaussianBlur(9, 1), (y + 1) / 2, num_steps=4, step_size=0.01, progress=False), "measurement"),
    (lambda p, y, x: S.dps(p, O.GaussianBlur(9, 1), (y + 1) / 2, num_steps=2, progress=False), "measurement"),
    (lambda p, y, x: S.sdedit(p, O.GaussianBlur(9, 1), y, start_image=(x + 1) / 2, num_steps=4, progress=False),
     "start_image"),
    (lambda p, y, x: O.GaussianBlur(9, 1).measure((x + 1) / 2, noise_std=0.05), "x"),
])
def test_image_space_tensors_inside_the_model_range_warn(faces_prior, faces_truth, call, name):
    """A [0, 1] image passes every range check ([0, 1] lies inside [-1, 1]); it must not pass silently."""
    y = O.GaussianBlur(9, 1).measure(faces_truth, noise_std=0.05, seed=0)
    with pytest.warns(O.ImageSpaceWarning) as record:
        call(faces_prior, y, faces_truth)
    message = str(record[0].message)
    assert message.startswith(name + " ") and "[0, 1] image space" in message and "to_model_space" in message


@pytest.mark.parametrize("task", ["deblur", "box", "box_eyes", "box_mouth", "random"])
def test_model_space_faces_do_not_warn(held_out_faces, task):
    """No false alarm on the faces the chapters use: the clean images and their measurements (σ_y 0.05 and 0)."""
    import warnings

    from helpers.evaluation.tasks import build_task

    op = build_task(task, 32).operator
    with warnings.catch_warnings():
        warnings.simplefilter("error", O.ImageSpaceWarning)
        for noise in (0.05, 0.0):
            y = op.measure(held_out_faces, noise_std=noise, seed=0)
            for i in range(len(y)):
                op.check_measurement(y[i : i + 1], (1, 3, 32, 32), noise_std=noise)


def test_image_space_warning_skips_small_measurements(held_out_faces):
    """A ×4 low-resolution 32-px face (8×8×3 values) is too small to judge: no warning either way."""
    import warnings

    op = O.SuperResolution(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", O.ImageSpaceWarning)
        op.check_measurement(op.forward((held_out_faces[:4] + 1) / 2), (4, 3, 32, 32))


# --------------------------------------------------------------------------- empty batches
@pytest.mark.parametrize("call, name", [
    (lambda p: O.Denoising().measure(torch.zeros(0, 3, 8, 8)), "x"),
    (lambda p: S.dps(p, O.Denoising(), torch.zeros(0, 3, 8, 8), progress=False), "measurement"),
    (lambda p: S.sdedit(p, O.Denoising(), torch.zeros(0, 3, 8, 8), progress=False), "measurement"),
    (lambda p: S.score_ald(p, O.Denoising(), torch.zeros(0, 3, 8, 8), progress=False), "measurement"),
    (lambda p: S.sample_ddpm(p, 0, num_steps=2, progress=False), "num_samples"),
    (lambda p: S.dps(p, O.Denoising(), _y(), num_steps=2, seed=[], progress=False), "seed"),
])
def test_empty_batches_are_refused(tiny_prior, call, name):
    with pytest.raises(ValueError, match=re.escape(name)):
        call(tiny_prior)


# --------------------------------------------------------------------------- integer tensors in operators
@pytest.mark.parametrize("op", [O.GaussianBlur(9, 1), O.Denoising(), O.BoxInpainting(16, 8), O.SuperResolution(2),
                                O.RandomInpainting(16, 0.5)], ids=repr)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_images_are_refused_not_zeroed(op, dtype):
    """GaussianBlur used to return zeros for a long tensor (kernel cast to int); Denoising's noise had the wrong std."""
    x = torch.ones(1, 3, 16, 16, dtype=dtype)
    for call in (lambda: op.measure(x), lambda: op.measure(x, noise_std=0.05), lambda: op(x)):
        with pytest.raises(TypeError, match=r"x has dtype .*(floating-point|0\.\.255)"):
            call()


# --------------------------------------------------------------------------- numpy / torch scalars
@pytest.mark.parametrize("call", [
    lambda p: S.dps(p, O.Denoising(), _y(), num_steps=np.int64(2), step_size=np.float32(1.0), seed=np.int64(3),
                    progress=False),
    lambda p: S.score_ald(p, O.Denoising(), _y(), num_steps=torch.tensor(20), step_size=torch.tensor(1.0),
                          noise_std=np.float32(0.05), corrector_steps=np.int64(1), progress=False),
    lambda p: S.sdedit(p, O.Denoising(), _y(), start_time=np.float32(0.5), num_steps=np.int32(4),
                       repeats=torch.tensor(1), seed=[np.int64(1)], progress=False),
    lambda p: S.sample_ddim(p, np.int64(1), num_steps=torch.tensor(2), eta=np.float32(0.5), progress=False,
                            trajectory_every=np.int64(1)),
    lambda p: O.BoxInpainting(32.0, 16),
    lambda p: O.BoxInpainting(np.int64(8), torch.tensor(4), center=(np.float32(4), 4)),
    lambda p: O.GaussianBlur(np.int64(3), np.float32(1.0)).measure(_x(), noise_std=torch.tensor(0.05), seed=np.int64(2)),
    lambda p: O.SuperResolution(np.int64(2)),
    lambda p: O.RandomInpainting(8, np.float32(0.5), seed=np.int64(3)),
    lambda p: NoiseSchedule.linear(np.int64(100), np.float32(1e-4), torch.tensor(0.02)).timesteps(torch.tensor(5)),
    lambda p: p.schedule.ddim_step(torch.zeros(1, 3, 8, 8), np.int64(10), torch.tensor(5), torch.zeros(1, 3, 8, 8),
                                   eta=np.float32(0.0)),
])
def test_numpy_and_torch_scalars_are_accepted(tiny_prior, call):
    call(tiny_prior)


def test_numpy_seed_gives_the_same_image_as_the_int(tiny_prior):
    a = S.dps(tiny_prior, O.Denoising(), _y(), num_steps=2, seed=3, progress=False).sample
    b = S.dps(tiny_prior, O.Denoising(), _y(), num_steps=2, seed=np.int64(3), progress=False).sample
    assert torch.equal(a, b)


@pytest.mark.parametrize("call, error, name", [
    (lambda p: S.dps(p, O.Denoising(), _y(), num_steps=2, seed=2**64, progress=False), ValueError, "seed"),
    (lambda p: S.dps(p, O.Denoising(), _y(), num_steps=2, seed=-1, progress=False), ValueError, "seed"),
    (lambda p: S.dps(p, O.Denoising(), _y(), num_steps=2, seed=[2**64], progress=False), ValueError, "seed[0]"),
    (lambda p: S.dps(p, O.Denoising(), _y(), num_steps=2, seed=1.5, progress=False), TypeError, "seed"),
    (lambda p: O.Denoising().measure(_x(), seed=2**64), ValueError, "seed"),
    (lambda p: S.dps(p, O.Denoising(), _y(), num_steps=2.5, progress=False), ValueError, "num_steps"),
    (lambda p: S.dps(p, O.Denoising(), _y(), num_steps=2, step_size=True, progress=False), TypeError, "step_size"),
    (lambda p: S.dps(p, O.Denoising(), _y(), num_steps=2, step_size=float("inf"), progress=False), ValueError,
     "step_size"),
    (lambda p: S.score_ald(p, O.Denoising(), _y(), num_steps=2, corrector_steps=1.5, progress=False), ValueError,
     "corrector_steps"),
    (lambda p: S.sdedit(p, O.Denoising(), _y(), repeats=0, progress=False), ValueError, "repeats"),
    (lambda p: O.BoxInpainting(32.5, 16), ValueError, "image_size"),
    (lambda p: O.BoxInpainting(32, "16"), TypeError, "box_size"),
    (lambda p: O.GaussianBlur(4, 1.0), ValueError, "kernel_size"),
    (lambda p: O.GaussianBlur(3, float("nan")), ValueError, "std"),
    (lambda p: O.SuperResolution(0), ValueError, "factor"),
    (lambda p: O.RandomInpainting(8, 1.5), ValueError, "keep_fraction"),
    (lambda p: NoiseSchedule.linear().timesteps(0), ValueError, "num_steps"),
    (lambda p: p.schedule.ddim_step(torch.zeros(1), 10, 5, torch.zeros(1), eta=float("nan")), ValueError, "eta"),
    (lambda p: p.schedule.add_noise(torch.zeros(1), torch.zeros(1), 2.5), TypeError, "t"),
])
def test_bad_numbers_name_the_argument(tiny_prior, call, error, name):
    with pytest.raises(error, match=re.escape(name)):
        call(tiny_prior)


def test_noise_on_an_integer_tensor_is_refused():
    with pytest.raises(TypeError, match="y has dtype torch.int64"):
        O.GaussianNoise(0.05)(torch.zeros(1, 3, 8, 8, dtype=torch.int64))
