"""Tests for helpers.face_measures: region boxes, attribute classifiers, eye symmetry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import data as D
from helpers import face_measures as M

N_TRAIN = 400
N_TEST = 150


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("course-cache")


@pytest.fixture(scope="module")
def train(cache):
    return D.face_dataset("train", n=N_TRAIN, cache_dir=cache, progress=False)


@pytest.fixture(scope="module")
def test(cache):
    return D.face_dataset("test", n=N_TEST, cache_dir=cache, progress=False)


@pytest.fixture(scope="module")
def clf(train):
    return M.train_attribute_classifiers(*train)


def test_boxes_inside_face_and_mirrored():
    for box in (M.EYE_BOX, M.LEFT_EYE_BOX, M.RIGHT_EYE_BOX, M.BROW_BOX, M.MOUTH_BOX):
        r0, r1, c0, c1 = box
        assert 0 <= r0 < r1 <= M.FACE_SIZE and 0 <= c0 < c1 <= M.FACE_SIZE
    r0, r1, c0, c1 = M.LEFT_EYE_BOX
    assert M.RIGHT_EYE_BOX == (r0, r1, M.FACE_SIZE - c1, M.FACE_SIZE - c0)
    assert M.box_slices(M.EYE_BOX, 64) == (slice(12, 30), slice(6, 58))
    # the eye and mouth regions do not overlap
    assert M.EYE_BOX[1] <= M.MOUTH_BOX[0]


def test_classifiers_accuracy_on_held_out_faces(clf, test):
    x, attrs = test
    acc = clf.accuracy(x, attrs)
    assert acc["eyes"] >= 0.85, acc
    assert acc["mouth"] >= 0.85, acc
    assert acc["eyebrows"] >= 0.8, acc  # 13 classes, thin strokes: harder


def test_predict_proba_shapes_and_inputs(clf, test):
    x, attrs = test
    proba = clf.predict_proba(x[:7])
    assert set(proba) == {"eyes", "mouth", "eyebrows"}
    assert proba["eyes"].shape == (7, len(D.FACE_EYES))
    assert proba["mouth"].shape == (7, len(D.FACE_MOUTHS))
    np.testing.assert_allclose(proba["mouth"].sum(1), 1.0, atol=1e-6)
    # torch input and a single (3, H, W) face give the same answer
    pt = clf.predict_proba(torch.from_numpy(x[:7]))
    np.testing.assert_allclose(pt["eyes"], proba["eyes"], atol=1e-6)
    one = clf.predict_proba(x[0])
    np.testing.assert_allclose(one["eyes"][0], proba["eyes"][0], atol=1e-6)
    # a 64 x 64 face is resized to 32 x 32
    big = torch.nn.functional.interpolate(torch.from_numpy(x[:7]), scale_factor=2, mode="nearest")
    assert (clf.predict(big)["eyes"] == proba["eyes"].argmax(1)).mean() >= 0.8
    p_true = clf.prob_of_true(x[:7], {k: v[:7] for k, v in attrs.items()})
    assert p_true["eyes"].shape == (7,) and np.all((0 <= p_true["eyes"]) & (p_true["eyes"] <= 1))
    with pytest.raises(ValueError, match="to_image_space"):
        clf.predict_proba(D.to_model_space(x[:2]))


def test_classifiers_tolerate_mild_noise(clf, test):
    x, attrs = test
    noisy = np.clip(x + np.random.default_rng(1).normal(0, 0.03, x.shape), 0, 1).astype(np.float32)
    acc = clf.accuracy(noisy, attrs)
    assert acc["eyes"] >= 0.75 and acc["mouth"] >= 0.75, acc


def test_load_or_train_classifiers_caches(cache, train, monkeypatch):
    c1 = M.load_or_train_classifiers(cache_dir=cache, n_train=N_TRAIN, n_test=N_TEST, progress=False)
    assert set(c1.test_accuracy) == {"eyes", "mouth", "eyebrows"}
    assert list((cache / "models").glob("face_classifiers_*.npz"))

    def fail(*a, **k):
        raise AssertionError("should have been loaded from the cache")

    monkeypatch.setattr(M, "train_attribute_classifiers", fail)
    c2 = M.load_or_train_classifiers(cache_dir=cache, n_train=N_TRAIN, n_test=N_TEST, progress=False)
    assert c2.test_accuracy == c1.test_accuracy
    x = train[0][:20]
    np.testing.assert_allclose(c2.predict_proba(x)["mouth"], c1.predict_proba(x)["mouth"])


def _swap_left_eye(x, donor):
    """Faces whose left-eye region is replaced by the left-eye region of ``donor``."""
    out = x.copy()
    rs, cs = M.box_slices(M.LEFT_EYE_BOX)
    out[:, :, rs, cs] = donor[:, :, rs, cs]
    return out


def test_eye_symmetry_real_vs_perturbed(test):
    x, attrs = test
    real = M.eye_symmetry(x)
    assert real.shape == (len(x),)
    assert np.median(real) > 0.9 and real.mean() > 0.85

    # left eye taken from a face with another eye type (same skin colour or not)
    order = np.argsort(attrs["eyes"], kind="stable")
    donor_idx = np.roll(order, len(x) // 2)
    differs = attrs["eyes"][order] != attrs["eyes"][donor_idx]
    swapped = _swap_left_eye(x[order], x[donor_idx])
    s_swap = M.eye_symmetry(swapped)[differs]
    assert s_swap.mean() < real.mean() - 0.3
    assert np.mean(s_swap < real[order][differs]) > 0.9

    # left eye erased to skin colour, and pure noise
    erased = x.copy()
    rs, cs = M.box_slices(M.LEFT_EYE_BOX)
    erased[:, :, rs, cs] = np.median(x[:, :, 14:17, 4:8].reshape(len(x), 3, -1), axis=2)[:, :, None, None]
    assert M.eye_symmetry(erased).mean() < 0.2
    noise = np.random.default_rng(0).random(x.shape).astype(np.float32)
    assert abs(M.eye_symmetry(noise).mean()) < 0.1

    # identical eyes give exactly 1 (up to eps), torch input works
    sym = x[:4].copy()
    sym[:, :, :, 16:] = sym[:, :, :, :16][..., ::-1]
    np.testing.assert_allclose(M.eye_symmetry(torch.from_numpy(sym)), 1.0, atol=0.01)
