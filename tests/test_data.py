"""Tests for helpers.data: conversions, range checks, cartoon faces, digits, photos, load_image."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import data as D
from helpers.face_measures import BROW_BOX, EYE_BOX, MOUTH_BOX, box_slices

# a plain face: no hair, beard or glasses, light skin, white background
PLAIN = dict(eyes=D.FACE_EYES.index("default"), eyebrows=D.FACE_EYEBROWS.index("default"),
             mouth=D.FACE_MOUTHS.index("default"), nose=0, skin=D.FACE_SKIN.index("light"),
             hair=D.FACE_HAIR.index("none"), hair_color=0, facial_hair=0, accessory=0,
             background=D.FACE_BACKGROUNDS.index("white"))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---------------------------------------------------------------- conversions


def test_conversions_round_trip_torch_and_numpy():
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(D.to_image_space(D.to_model_space(x)), x, atol=1e-6)
    assert D.to_model_space(x).min() >= -1 and D.to_model_space(x).max() <= 1
    a = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    back = D.to_image_space(D.to_model_space(a))
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_allclose(back, a, atol=1e-6)
    assert D.to_model_space(0.0) == -1.0 and D.to_model_space(1.0) == 1.0


def test_to_image_space_clamps():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 1.2])
    assert torch.equal(D.to_image_space(x), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    np.testing.assert_array_equal(D.to_image_space(np.array([-3.0, 3.0])), [0.0, 1.0])


def test_check_range_passes_and_returns_input():
    x = torch.rand(5)
    assert D.check_range(x, 0, 1, "x") is x
    D.check_range(np.array([-1.0005, 1.0]), -1, 1, "y")  # within tol


def test_check_range_messages():
    with pytest.raises(ValueError) as e:
        D.check_range(torch.linspace(-1, 1, 5), 0, 1, "x")
    msg = str(e.value)
    assert msg.startswith("x has values in [-1, 1]") and "image space [0, 1]" in msg
    assert "helpers.data.to_image_space" in msg

    with pytest.raises(ValueError, match=r"x0 has values .* model space \[-1, 1\].*to_model_space"):
        D.check_range(np.array([0.0, 1.5]), -1, 1, "x0")
    with pytest.raises(ValueError, match="divide uint8 values by 255"):
        D.check_range(np.array([0.0, 200.0]), 0, 1, "img")
    with pytest.raises(ValueError, match="NaN"):
        D.check_range(torch.tensor([0.5, float("nan")]), 0, 1, "img")
    with pytest.raises(ValueError, match=r"sigma has values .* \[0, 0.5\]"):
        D.check_range(np.array([0.7]), 0, 0.5, "sigma")


# ---------------------------------------------------------------- cartoon faces


def test_render_face_deterministic_and_well_formed():
    img, attrs = D.render_face(123)
    img2, attrs2 = D.render_face(123)
    assert img.shape == (3, 32, 32) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    np.testing.assert_array_equal(img, img2)
    assert attrs == attrs2
    assert set(attrs) == set(D.FACE_ATTRIBUTES)
    for k, names in D.FACE_ATTRIBUTES.items():
        assert 0 <= attrs[k] < len(names)
    np.testing.assert_array_equal(np.round(img * 255) / 255, img)  # an 8-bit image
    other, _ = D.render_face(124)
    assert np.abs(other - img).max() > 0.1


def test_render_face_sizes_and_background():
    img, attrs = D.render_face(5, size=16)
    assert img.shape == (3, 16, 16)
    a = dict(PLAIN)
    green, at = D.render_face_attrs(a, background="#00ff00")
    assert at["background"] == -1
    np.testing.assert_allclose(green[:, -1, 0], [0, 1, 0])  # bottom corners show the background
    np.testing.assert_allclose(green[:, -1, -1], [0, 1, 0])
    named, at = D.render_face_attrs(a, background="sky_blue")
    np.testing.assert_allclose(named[:, -1, 0], D.FACE_BACKGROUND_RGB["sky_blue"], atol=1 / 255)
    # forcing a background changes nothing else about the seed's face
    img_seed, a_seed = D.render_face(9)
    img_white, a_white = D.render_face(9, background="white")
    assert {k: v for k, v in a_seed.items() if k != "background"} == {k: v for k, v in a_white.items() if k != "background"}
    np.testing.assert_array_equal(img_seed[:, 8:24, 8:24], img_white[:, 8:24, 8:24])
    with pytest.raises(ValueError, match="background"):
        D.render_face(1, background="no-such-colour")


def test_face_attr_names():
    _, attrs = D.render_face(3)
    names = D.face_attr_names(attrs)
    assert names["eyes"] in D.FACE_EYES and names["mouth"] in D.FACE_MOUTHS
    assert set(names) == set(D.FACE_ATTRIBUTES)
    batch = {k: np.array([v, v]) for k, v in attrs.items()}
    batch["seed"] = np.array([3, 3])
    assert D.face_attr_names(batch, 1) == names


def test_train_and_test_seeds_are_disjoint():
    tr, te = D.face_seeds("train"), D.face_seeds("test")
    assert len(tr) == D.N_TRAIN_FACES and len(te) == D.N_TEST_FACES
    assert not set(tr.tolist()) & set(te.tolist())
    assert tr.max() < D.TEST_SEED_OFFSET <= te.min()
    with pytest.raises(ValueError):
        D.face_seeds("train", D.TEST_SEED_OFFSET + 1)
    with pytest.raises(ValueError, match="split"):
        D.face_seeds("val")


def _skin_rgb(name):
    import python_avatars as pa

    h = getattr(pa.SkinColor, name.upper()).value.lstrip("#")
    return np.array([int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)])


def _outside(img_diff, box):
    rs, cs = box_slices(box, img_diff.shape[-1])
    m = np.ones(img_diff.shape[-2:], bool)
    m[rs, cs] = False
    return img_diff[..., m]


@pytest.mark.parametrize("skin", ["light", "black"])
def test_face_present_where_the_crop_expects_it(skin):
    a = dict(PLAIN, skin=D.FACE_SKIN.index(skin))
    img, _ = D.render_face_attrs(a)
    # cheeks between eyes and mouth, and the forehead: plain skin
    for rs, cs in [(slice(13, 17), slice(4, 9)), (slice(13, 17), slice(23, 28)), (slice(1, 3), slice(12, 20))]:
        patch = img[:, rs, cs].reshape(3, -1).mean(1)
        np.testing.assert_allclose(patch, _skin_rgb(skin), atol=0.02)


@pytest.mark.parametrize(
    "attr,names,box",
    [("eyes", D.FACE_EYES, EYE_BOX), ("eyebrows", D.FACE_EYEBROWS, BROW_BOX), ("mouth", D.FACE_MOUTHS, MOUTH_BOX)],
)
def test_every_allowed_part_renders_inside_its_box(attr, names, box):
    skin = _skin_rgb("light")
    rs, cs = box_slices(box)
    imgs = []
    for i, name in enumerate(names):
        img, at = D.render_face_attrs(dict(PLAIN, **{attr: i}))
        assert at[attr] == i
        region = img[:, rs, cs]
        # the part is drawn: its region is far from plain skin somewhere
        assert np.abs(region - skin[:, None, None]).max(axis=0).max() > 0.2, name
        imgs.append(img)
    imgs = np.stack(imgs)
    for i, name in enumerate(names):
        # the part changes nothing outside its box, and every part looks different
        diff = np.abs(imgs - imgs[i]).max(axis=1)
        assert _outside(diff, box).max() < 0.02, name
        others = np.delete(diff.reshape(len(names), -1).max(1), i)
        assert others.min() > 0.05, name


def test_excluded_accessories_and_hats_not_allowed():
    for bad in ["sunglasses", "sunglasses_2", "wayfarers", "wayfarers_2", "eyepatch", "kurt"]:
        assert bad not in D.FACE_ACCESSORIES
    for bad in ["hat", "astronaut"]:
        assert bad not in D.FACE_HAIR
    assert "wink" not in D.FACE_EYES and "none" not in D.FACE_EYEBROWS


def test_glasses_and_beards_keep_eyes_and_mouth_visible():
    skin = _skin_rgb("light")
    for acc in range(len(D.FACE_ACCESSORIES)):
        for beard in range(len(D.FACE_FACIAL_HAIR)):
            img, _ = D.render_face_attrs(dict(PLAIN, accessory=acc, facial_hair=beard, mouth=D.FACE_MOUTHS.index("scream_open")))
            # eye centres stay dark, mouth centre stays dark red/brown, not skin
            for r, c in [(10, 8), (10, 23)]:
                assert img[:, r, c].mean() < 0.45
            assert np.abs(img[:, 23, 15:17] - skin[:, None]).max() > 0.2


def test_face_dataset_cache(tmp_path, monkeypatch):
    imgs, attrs = D.face_dataset("train", n=6, cache_dir=tmp_path, progress=False)
    assert imgs.shape == (6, 3, 32, 32) and imgs.dtype == np.float32
    assert set(D.FACE_ATTRIBUTES) <= set(attrs) and attrs["eyes"].shape == (6,)
    np.testing.assert_array_equal(attrs["seed"], np.arange(6))
    files = list((tmp_path / "data").glob("*.npz"))
    assert len(files) == 1 and D.FACE_DATA_VERSION in files[0].name and "_s32_n6" in files[0].name
    img3, a3 = D.render_face(3)
    np.testing.assert_array_equal(imgs[3], img3)
    assert all(attrs[k][3] == a3[k] for k in D.FACE_ATTRIBUTES)

    def fail(*a, **k):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(D, "render_face", fail)
    again, attrs2 = D.face_dataset("train", n=6, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again, imgs)
    fewer, attrs4 = D.face_dataset("train", n=4, cache_dir=tmp_path, progress=False)  # prefix of the n=6 file
    np.testing.assert_array_equal(fewer, imgs[:4])
    np.testing.assert_array_equal(attrs4["mouth"], attrs["mouth"][:4])
    monkeypatch.undo()

    monkeypatch.setenv("DIFFUSION_COURSE_CACHE", str(tmp_path / "env"))
    te, ate = D.face_dataset("test", n=2, progress=False)
    assert (tmp_path / "env" / "data").is_dir()
    np.testing.assert_array_equal(ate["seed"], D.TEST_SEED_OFFSET + np.arange(2))
    np.testing.assert_array_equal(te[1], D.render_face(D.TEST_SEED_OFFSET + 1)[0])


# ---------------------------------------------------------------- MNIST


def test_mnist_digits_shapes_padding_labels(no_network):
    x, y = D.mnist_digits("train")
    xh, yh = D.mnist_digits("heldout")
    xa, ya = D.mnist_digits("all")
    assert x.shape == (4000, 1, 32, 32) and xh.shape == (1000, 1, 32, 32) and xa.shape == (5000, 1, 32, 32)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.9
    for arr in (x, xh):  # 2 zero pixels on every side
        assert arr[:, :, :2].max() == 0 and arr[:, :, -2:].max() == 0
        assert arr[:, :, :, :2].max() == 0 and arr[:, :, :, -2:].max() == 0
    np.testing.assert_array_equal(np.bincount(y, minlength=10), [400] * 10)
    np.testing.assert_array_equal(np.bincount(yh, minlength=10), [100] * 10)
    assert len(np.unique(y[:100])) == 10  # shuffled, not sorted by label
    # disjoint
    keys = {row.tobytes() for row in (x * 255).astype(np.uint8).reshape(len(x), -1)}
    assert not any(row.tobytes() in keys for row in (xh * 255).astype(np.uint8).reshape(len(xh), -1))
    x2, y2 = D.mnist_digits("train")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x28, _ = D.mnist_digits("heldout", size=28)
    assert x28.shape == (1000, 1, 28, 28)
    with pytest.raises(ValueError, match="split"):
        D.mnist_digits("test")


# ---------------------------------------------------------------- photos


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_face_photo_offline(no_network, name):
    img = D.face_photo(name, size=64)
    assert img.shape == (3, 64, 64) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.05
    full = D.face_photo(name, size=32, crop=False)
    assert full.shape == (3, 32, 32)


def test_face_photo_unknown_name():
    with pytest.raises(ValueError, match="astronaut"):
        D.face_photo("mona_lisa")


def test_lfw_faces_offline(no_network):
    x = D.lfw_faces(5, size=32)
    assert x.shape == (5, 3, 32, 32) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(x[:, 0], x[:, 1])  # grayscale replicated
    with pytest.raises(ValueError):
        D.lfw_faces(101)


# ---------------------------------------------------------------- load_image


def test_load_image_numpy_layouts():
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    t = D.load_image(hwc, size=20)
    assert isinstance(t, torch.Tensor) and t.shape == (3, 20, 20) and t.dtype == torch.float32
    assert 0 <= t.min() and t.max() <= 1
    chw = np.moveaxis(hwc, -1, 0).astype(np.float32) / 255
    torch.testing.assert_close(D.load_image(chw, size=20), t, atol=1e-5, rtol=0)
    # same size: the centre square, untouched
    sq = D.load_image(hwc, size=40)
    np.testing.assert_allclose(sq.numpy(), np.moveaxis(hwc[:, 10:50], -1, 0) / 255, atol=1e-6)
    gray = D.load_image(np.full((10, 10), 0.5, np.float32), size=10)
    assert gray.shape == (3, 10, 10) and torch.allclose(gray, torch.full_like(gray, 0.5))
    rgba = D.load_image(np.zeros((8, 8, 4), np.uint8), size=8)
    assert rgba.shape == (3, 8, 8)


def test_load_image_path_and_pil(tmp_path):
    arr = np.zeros((30, 30, 3), np.uint8)
    arr[:, :, 0] = 255
    p = tmp_path / "red.png"
    Image.fromarray(arr).save(p)
    t = D.load_image(p, size=16)
    assert t.shape == (3, 16, 16)
    torch.testing.assert_close(t[0], torch.ones(16, 16))
    assert t[1:].abs().max() < 1e-6
    torch.testing.assert_close(D.load_image(str(p), size=16), t)
    torch.testing.assert_close(D.load_image(Image.open(p), size=16), t)
    torch.testing.assert_close(D.load_image(t, size=16), t)


def test_load_image_errors(tmp_path):
    with pytest.raises(TypeError, match="source"):
        D.load_image(12345, size=8)
    with pytest.raises(FileNotFoundError, match="source"):
        D.load_image(tmp_path / "missing.png", size=8)
    with pytest.raises(ValueError, match="source has values .*to_image_space"):
        D.load_image(np.full((8, 8, 3), -0.5, np.float32), size=8)
    with pytest.raises(ValueError, match="source has shape"):
        D.load_image(np.zeros((2, 8, 8, 3)), size=8)
    # an unreachable URL (a closed port on this machine) fails fast with a clear message
    with pytest.raises(RuntimeError, match="could not download"):
        D.load_image("http://127.0.0.1:9/image.png", size=8, timeout=2)
