"""helpers.aligned_faces: canonical part boxes of CelebA-HQ-aligned faces, measures, test faces."""

import numpy as np
import pytest
import torch

from helpers import aligned_faces as af


# ------------------------------------------------------------------------------------- boxes
def test_canonical_landmarks_follow_the_recipe_at_256():
    lm = af.canonical_landmarks(256)
    # the eye–mouth distance sets the scale (template r = 1.155 > 1/0.9): rows fixed by the recipe
    assert lm["left_eye"][0] == pytest.approx(256 * (0.5 - 0.1 / 3.6))  # 120.9
    assert lm["mouth"][0] == pytest.approx(192.0)
    assert lm["left_eye"][1] == pytest.approx(97.2, abs=0.05) and lm["right_eye"][1] == pytest.approx(158.8, abs=0.05)
    assert lm["left_eye"][1] + lm["right_eye"][1] == pytest.approx(256)  # symmetric about the centre column
    assert lm["mouth_left"][1] == pytest.approx(102.5, abs=0.05)


def test_the_recipe_on_a_known_face():
    # a frontal face with eyes 40 px apart and the mouth 40 px below their midpoint (r = 1 < 1.11):
    # crop side 4 · 40 = 160 px, centred 4 px below the eye midpoint; eyes end up 64 px apart at 256
    face = {"left_eye": (100.0, 80.0), "right_eye": (100.0, 120.0), "mouth_left": (140.0, 85.0), "mouth_right": (140.0, 115.0)}
    c, x, y = af.alignment_frame(face)
    assert c == pytest.approx([100.0, 104.0]) and x == pytest.approx([80.0, 0.0]) and y == pytest.approx([0.0, 80.0])
    out = af.align_landmarks(face, 256)
    assert out["left_eye"] == pytest.approx((128 - 0.1 * 40 * 1.6, 128 - 32))
    assert out["right_eye"] == pytest.approx((121.6, 160.0))
    assert out["mouth_left"] == pytest.approx((128 + 0.9 * 40 * 1.6, 128 - 24))


def test_boxes_at_256():
    assert af.PART_BOXES_256 == {"eyes": (105, 137, 73, 183), "left_eye": (105, 137, 73, 121),
                                 "right_eye": (105, 137, 135, 183), "mouth": (166, 218, 91, 165)}
    lm = af.canonical_landmarks(256)
    for part, point in (("left_eye", "left_eye"), ("right_eye", "right_eye"), ("mouth", "mouth"),
                        ("mouth", "mouth_left"), ("mouth", "mouth_right"), ("eyes", "left_eye"), ("eyes", "right_eye")):
        r0, r1, c0, c1 = af.PART_BOXES_256[part]
        r, c = lm[point]
        assert r0 < r < r1 and c0 < c < c1, (part, point)


@pytest.mark.parametrize("size", [8, 32, 64, 128, 256, 512, 1024])
def test_boxes_scale_with_size_and_fit(size):
    boxes = af.part_boxes(size)
    assert set(boxes) == set(af.PART_NAMES)
    for name, (r0, r1, c0, c1) in boxes.items():
        assert 0 <= r0 < r1 <= size and 0 <= c0 < c1 <= size, name
        ref = af.PART_BOXES_256[name]
        for v, v256 in zip((r0, r1, c0, c1), ref):
            assert abs(v - v256 * size / 256) <= max(1.0, size / 256), (name, size)
    le, re_ = boxes["left_eye"], boxes["right_eye"]
    assert re_ == (le[0], le[1], size - le[3], size - le[2])  # mirror images
    mouth = boxes["mouth"]
    if size >= 64:
        assert (mouth[1] - mouth[0]) * (mouth[3] - mouth[2]) < size * size / 9  # a part, not a third of the image


def test_part_box_errors():
    with pytest.raises(ValueError, match="nose"):
        af.part_box("nose")
    with pytest.raises(ValueError, match="at least 4"):
        af.part_boxes(2)


# ------------------------------------------------------------------------------------- measures
def _face(seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=g)


def test_eye_symmetry_one_on_mirrored_images_and_lower_after_a_change():
    x = _face()
    sym = (x + x.flip(-1)) / 2
    s = af.eye_symmetry(sym)
    assert s.shape == (2,) and np.allclose(s, 1.0, atol=1e-4)
    r0, r1, c0, c1 = af.part_box("left_eye", 64)
    pert = sym.clone()
    pert[:, :, r0:r1, c0:c1] = torch.rand(2, 3, r1 - r0, c1 - c0, generator=torch.Generator().manual_seed(5))
    assert (af.eye_symmetry(pert) < 0.5).all()
    flat = sym.clone()
    flat[:, :, r0:r1, c0:c1] = 0.6  # one eye erased to skin
    assert np.allclose(af.eye_symmetry(flat), 0.0, atol=1e-6)
    assert af.eye_symmetry(sym[0].numpy()).shape == (1,)  # one (3, H, W) array


def test_eye_symmetry_checks_range():
    with pytest.raises(ValueError, match="to_image_space"):
        af.eye_symmetry(_face() * 2 - 1)


def test_region_psnr_equals_psnr_on_the_crops():
    from helpers.metrics import psnr

    truth = _face(0, 256)
    x = (truth + 0.05 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    for region in ("eyes", "mouth", (10, 20, 30, 50)):
        box = af.part_box(region, 256) if isinstance(region, str) else region
        r0, r1, c0, c1 = box
        got = af.region_psnr(x, truth, region)
        assert got == pytest.approx(psnr(x[..., r0:r1, c0:c1], truth[..., r0:r1, c0:c1], data_range=1.0))
    # only the box counts: a change outside the mouth box leaves the mouth's PSNR unchanged
    y = x.clone()
    y[..., :50, :] = 0
    assert af.region_psnr(y, truth, "mouth") == pytest.approx(af.region_psnr(x, truth, "mouth"))
    assert isinstance(af.region_psnr(x[0], truth[0], "eyes"), float)
    assert af.region_psnr(x * 255, truth * 255, "eyes", data_range=255.0) == pytest.approx(af.region_psnr(x, truth, "eyes"), rel=1e-5)
    with pytest.raises(ValueError, match="box"):
        af.region_psnr(x, truth, (0, 300, 0, 10))


def test_region_lpips_equals_lpips_on_the_crops():
    from helpers.metrics import lpips_distance

    truth = _face(0, 128)
    x = (truth + 0.1 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    r0, r1, c0, c1 = af.part_box("mouth", 128)
    got = af.region_lpips(x, truth, "mouth")
    assert got == pytest.approx(lpips_distance(x[..., r0:r1, c0:c1], truth[..., r0:r1, c0:c1]), rel=1e-5)
    assert (got > 0).all() and np.allclose(af.region_lpips(truth, truth, "mouth"), 0, atol=1e-6)


# ------------------------------------------------------------------------------------- test faces
def test_prior_samples_cache_round_trips_and_is_keyed(tiny_prior, tmp_path):
    from helpers.gpu_budget import count_evaluations
    from helpers.samplers import sample_ddim

    with count_evaluations(tiny_prior) as n:
        a = af.prior_samples(tiny_prior, 3, seed=4, num_steps=3, batch_size=2, cache_dir=tmp_path)
    assert a.shape == (3, 3, 8, 8) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert n.forward_images == 9
    path = af.prior_samples_path(tiny_prior, 3, seed=4, num_steps=3, cache_dir=tmp_path)
    assert path.is_file() and path.suffix == ".npz"
    with np.load(path, allow_pickle=False) as f:  # no pickle inside
        assert np.array_equal(f["images"], a.numpy())
    with count_evaluations(tiny_prior) as n:
        b = af.prior_samples(tiny_prior, 3, seed=4, num_steps=3, cache_dir=tmp_path)
    assert n.forward_images == 0 and torch.equal(a, b)
    # image i comes from seed + i alone: the batch split does not matter
    ref = sample_ddim(tiny_prior, num_samples=1, num_steps=3, seed=[5], progress=False).sample
    assert torch.allclose(a[1], ((ref[0] + 1) / 2).clamp(0, 1), atol=1e-5)
    # another seed, step count or network: another file
    c = af.prior_samples(tiny_prior, 3, seed=5, num_steps=3, cache_dir=tmp_path)
    assert af.prior_samples_path(tiny_prior, 3, seed=5, num_steps=3, cache_dir=tmp_path) != path
    assert not torch.equal(a, c)
    assert af.prior_samples_path(tiny_prior, 3, seed=4, num_steps=4, cache_dir=tmp_path) != path
    with torch.no_grad():
        tiny_prior.unet.conv_in.bias.add_(0.1)
    assert af.prior_samples_path(tiny_prior, 3, seed=4, num_steps=3, cache_dir=tmp_path) != path
    assert len(list((tmp_path / "prior_samples").glob("*.npz"))) == 2


def test_prior_samples_recomputes_a_foreign_file(tiny_prior, tmp_path):
    path = af.prior_samples_path(tiny_prior, 2, seed=0, num_steps=2, cache_dir=tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    x = af.prior_samples(tiny_prior, 2, seed=0, num_steps=2, cache_dir=tmp_path)
    assert x.shape == (2, 3, 8, 8)
    with np.load(path, allow_pickle=False) as f:
        assert f["images"].shape == (2, 3, 8, 8)


def test_aligned_photos_land_on_the_canonical_places():
    photos = af.aligned_photos(256)
    assert photos.shape == (2, 3, 256, 256) and photos.dtype == torch.float32
    assert 0 <= photos.min() and photos.max() <= 1 and photos.std() > 0.1
    can = af.canonical_landmarks(256)
    boxes = af.PART_BOXES_256
    for name in ("astronaut", "grace_hopper"):
        lm = af.align_landmarks(af.PHOTO_LANDMARKS[name], 256)
        for eye in ("left_eye", "right_eye"):
            assert np.hypot(lm[eye][0] - can[eye][0], lm[eye][1] - can[eye][1]) < 3, (name, eye)
        mouth = ((lm["mouth_left"][0] + lm["mouth_right"][0]) / 2, (lm["mouth_left"][1] + lm["mouth_right"][1]) / 2)
        r0, r1, c0, c1 = boxes["mouth"]
        assert r0 + 8 < mouth[0] < r1 - 8 and abs(mouth[1] - 128) < 3, name
        for corner in ("mouth_left", "mouth_right"):
            assert c0 < lm[corner][1] < c1, (name, corner)
    gh = af.align_landmarks(af.PHOTO_LANDMARKS["grace_hopper"], 256)
    assert (gh["mouth_left"][0] + gh["mouth_right"][0]) / 2 == pytest.approx(192, abs=3)


def test_aligned_photo_is_where_the_landmarks_say():
    # the dark pupils: the darkest pixels near the canonical eye places, in the aligned image itself
    photos = af.aligned_photos(256)
    for i, name in enumerate(("astronaut", "grace_hopper")):
        lm = af.align_landmarks(af.PHOTO_LANDMARKS[name], 256)
        gray = photos[i].mean(0)
        for eye in ("left_eye", "right_eye"):
            r, c = (int(v) for v in lm[eye])
            patch = gray[r - 10:r + 11, c - 10:c + 11]
            dr, dc = divmod(int(patch.argmin()), patch.shape[1])
            assert abs(dr - 10) <= 4 and abs(dc - 10) <= 4, (name, eye, dr - 10, dc - 10)


def test_align_face_any_size():
    small = af.aligned_photos(64, names=("grace_hopper",))
    assert small.shape == (1, 3, 64, 64)
    big = af.aligned_photos(256, names=("grace_hopper",))
    down = torch.nn.functional.avg_pool2d(big, 4)
    assert (small - down).abs().mean() < 0.03
    with pytest.raises(ValueError, match="landmarks"):
        af.aligned_photos(64, names=("mona_lisa",))


# ------------------------------------------------------------------------------------- tasks per resolution
def test_task_operators_at_256_use_the_aligned_boxes():
    from helpers.evaluation.tasks import CHAPTER_TASKS, blur_setting, task_operators

    tasks = task_operators(256)
    assert list(tasks) == list(CHAPTER_TASKS) == ["deblur", "box", "box_eyes", "box_mouth", "random", "sr4"]
    for part, name in (("mouth", "box_mouth"), ("eyes", "box_eyes")):
        r0, r1, c0, c1 = af.part_box(part, 256)
        mask = tasks[name].operator.mask[0, 0]
        assert (mask[r0:r1, c0:c1] == 0).all()  # the part is hidden ...
        assert int((mask == 0).sum()) == (r1 - r0) * (c1 - c0)  # ... and nothing else
        assert int((mask == 0).sum()) < 256 * 256 / 9  # not a third of the image
        assert "aligned face" in tasks[name].description
    mouth_rows = (tasks["box_mouth"].operator.mask[0, 0] == 0).any(1).nonzero().flatten()
    assert int(mouth_rows.min()) == 166 and int(mouth_rows.max()) == 217
    assert (tasks["deblur"].operator.kernel_size, tasks["deblur"].operator.std) == blur_setting(256) == (61, 3.0)
    assert tasks["box"].operator.box == (64, 64, 128, 128)  # DPS's 128×128 centred box
    assert tasks["sr4"].operator.factor == 4
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    for t in tasks.values():
        assert torch.isfinite(t.operator(x)).all()


def test_task_operators_at_32_are_build_tasks():
    from helpers.evaluation.tasks import (
        build_face_task,
        build_task,
        face_layout,
        task_operators,
    )

    tasks = task_operators(32)
    for name, task in tasks.items():
        ref = build_task(name, 32)
        assert task.description == ref.description
        if hasattr(ref.operator, "mask"):
            assert torch.equal(task.operator.mask, ref.operator.mask)
    assert face_layout(32) == "cartoon" and face_layout(64) == "cartoon" and face_layout(128) == "aligned"
    forced = build_face_task("box_mouth", 32, faces="aligned")
    r0, r1, c0, c1 = af.part_box("mouth", 32)
    assert (forced.operator.mask[0, 0, r0:r1, c0:c1] == 0).all()
    cartoon256 = build_face_task("box_eyes", 256, faces="cartoon")
    assert "72×208" in cartoon256.description  # the cartoon box scaled up: a third of the face
    # build_task, which the harness, chapters and explorers call, follows the resolution's faces
    assert build_task("box_eyes", 256).description == task_operators(256)["box_eyes"].description
    assert "aligned face" in build_task("box_mouth", 256).description
    with pytest.raises(ValueError, match="faces="):
        face_layout(256, faces="photo")


def _prior_at(size, channels=3):
    from diffusers import UNet2DModel

    from helpers.priors import Prior
    from helpers.schedule import NoiseSchedule

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(8, 8),
                       layers_per_block=1, norm_num_groups=4, down_block_types=("DownBlock2D",) * 2,
                       up_block_types=("UpBlock2D",) * 2)
    return Prior(unet, NoiseSchedule.linear(), name=f"tiny{size}")


def test_test_images_on_a_face_model_are_its_samples_then_the_aligned_photos(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_COURSE_CACHE", str(tmp_path))
    prior = _prior_at(128)
    images, names = af.test_images(prior, 3, seed=5, sample_steps=2)
    assert images.shape == (3, 3, 128, 128) and images.dtype == torch.float32
    assert names == ["prior sample 5", "astronaut", "grace_hopper"]
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    torch.testing.assert_close(images[0:1], af.prior_samples(prior, 1, seed=5, num_steps=2))
    torch.testing.assert_close(images[1:], af.aligned_photos(128))
    two, names2 = af.test_images(prior, 2, sample_steps=2)     # fewer than the photos: photos only
    assert names2 == ["astronaut", "grace_hopper"]


def test_test_images_on_the_cartoon_prior_are_the_held_out_faces():
    from helpers.data import face_dataset

    images, names = af.test_images(_prior_at(32), 2)
    np.testing.assert_allclose(images.numpy(), face_dataset("test", size=32, n=2, progress=False)[0])
    assert names == ["test face 0", "test face 1"]


def test_test_images_refuses_a_grey_prior():
    with pytest.raises(ValueError, match="colour face prior"):
        af.test_images(_prior_at(32, channels=1), 2)
