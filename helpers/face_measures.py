"""Measures for 32 x 32 cartoon faces: attribute classifiers and an eye-symmetry score.

Used to score reconstructions: did the inpainted / deblurred face keep its eye
type and mouth type, and are its two eyes alike?

* Region boxes (:data:`EYE_BOX`, :data:`LEFT_EYE_BOX`, :data:`RIGHT_EYE_BOX`,
  :data:`BROW_BOX`, :data:`MOUTH_BOX`) in the pixels of a 32 x 32 face from
  :func:`helpers.data.render_face` (crop :data:`helpers.data.FACE_CROP_BOX`).
  They were measured by rendering every allowed part on the same face and
  keeping the rows and columns where the part changes pixels.
* :func:`train_attribute_classifiers` -- one small scikit-learn classifier per
  attribute (eyes, mouth, eyebrows), each looking only at its region;
  :func:`load_or_train_classifiers` trains them once on the training faces and
  caches them.
* :func:`eye_symmetry` -- how much the left eye looks like the mirrored right eye.

All functions take faces in image space [0, 1], shape ``(N, 3, H, W)`` (or one
``(3, H, W)``), numpy or torch; faces of another size are resized to 32 x 32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import (
    FACE_ATTRIBUTES,
    FACE_DATA_VERSION,
    check_range,
    default_cache_dir,
    face_dataset,
)

__all__ = [
    "FACE_SIZE",
    "EYE_BOX",
    "LEFT_EYE_BOX",
    "RIGHT_EYE_BOX",
    "BROW_BOX",
    "MOUTH_BOX",
    "REGION_BOXES",
    "CLASSIFIED_ATTRIBUTES",
    "box_slices",
    "as_faces32",
    "FaceAttributeClassifiers",
    "train_attribute_classifiers",
    "load_or_train_classifiers",
    "save_classifiers",
    "load_classifiers",
    "eye_symmetry",
]

FACE_SIZE = 32
"""The side the boxes and the classifiers refer to."""

# Boxes are (row0, row1, col0, col1), half-open, in a 32 x 32 face.
# Measured: eyes of every allowed type lie in rows 6..13, cols 4..27 (eye centres
# at row 10.0, cols 8.6 and 23.4); eyebrows in rows 1..7, cols 2..29; mouths in
# rows 18..28, cols 7..24 (the EATING mouth's cheeks reach cols 3..28); the nose
# in rows 15..17.
EYE_BOX = (6, 15, 3, 29)
"""Both eyes."""
LEFT_EYE_BOX = (7, 15, 4, 14)
"""The eye on the left of the image, used by :func:`eye_symmetry`.

Starts one row below :data:`EYE_BOX`: row 6 holds only the top edge of the
largest eyes but also the lowest pixels of some eyebrows, and asymmetric
eyebrows (UP_DOWN) there would lower the score of symmetric eyes.
"""
RIGHT_EYE_BOX = (7, 15, 18, 28)
"""The eye on the right of the image: :data:`LEFT_EYE_BOX` mirrored about the centre line (x = 16)."""
BROW_BOX = (0, 9, 2, 30)
"""Both eyebrows."""
MOUTH_BOX = (17, 30, 3, 29)
"""The mouth, with the cheeks of the EATING mouth."""

REGION_BOXES = {"eyes": EYE_BOX, "eyebrows": BROW_BOX, "mouth": MOUTH_BOX}
"""Attribute -> the region its classifier looks at."""

CLASSIFIED_ATTRIBUTES = ("eyes", "mouth", "eyebrows")

MEASURES_VERSION = "measures-v1"
"""Version of the classifiers' recipe; part of the cache key."""


def box_slices(box: Sequence[int], size: int = FACE_SIZE) -> tuple[slice, slice]:
    """``(row slice, col slice)`` of a 32 x 32 box scaled to a ``size`` x ``size`` image."""
    r0, r1, c0, c1 = box
    k = size / FACE_SIZE
    return slice(int(round(r0 * k)), int(round(r1 * k))), slice(int(round(c0 * k)), int(round(c1 * k)))


def as_faces32(images, name: str = "images") -> np.ndarray:
    """Faces as float32 numpy ``(N, 3, 32, 32)`` in [0, 1].

    Accepts numpy or torch, ``(N, 3, H, W)`` or ``(3, H, W)``, image space [0, 1]
    (a ValueError names the conversion if the values look like model space).
    Other sizes are resized with antialiased bilinear interpolation.
    """
    if isinstance(images, torch.Tensor):
        x = images.detach().cpu().float()
    else:
        x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: expected (N, 3, H, W) or (3, H, W) RGB faces")
    check_range(x, 0.0, 1.0, name)
    if x.shape[-2:] != (FACE_SIZE, FACE_SIZE):
        x = F.interpolate(x, size=(FACE_SIZE, FACE_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).numpy().astype(np.float32, copy=False)


def _region_features(x32: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """Region pixels minus the region's per-channel median (~ the skin colour), flattened: ``(N, D)``.

    Subtracting the median makes the features describe the drawn part rather
    than the skin colour.
    """
    rs, cs = box_slices(box)
    patch = x32[:, :, rs, cs]
    med = np.median(patch.reshape(len(patch), 3, -1), axis=2)[:, :, None, None]
    return (patch - med).reshape(len(patch), -1)


class FaceAttributeClassifiers:
    """One classifier per attribute, each on its own face region.

    Attributes
    ----------
    models : dict[str, sklearn estimator]
        attribute -> fitted pipeline (features: region pixels minus their median).
    boxes : dict[str, tuple]
        attribute -> region box (32 x 32 pixels).
    classes : dict[str, list[str]]
        attribute -> class names (index = label, as in :data:`helpers.data.FACE_ATTRIBUTES`).
    test_accuracy : dict[str, float]
        accuracy on the held-out test faces, filled by :func:`load_or_train_classifiers`.
    """

    def __init__(self, models: dict, boxes: dict | None = None, test_accuracy: dict | None = None, info: dict | None = None):
        self.models = dict(models)
        self.boxes = {k: tuple((boxes or REGION_BOXES)[k]) for k in self.models}
        self.classes = {k: list(FACE_ATTRIBUTES[k]) for k in self.models}
        self.test_accuracy = dict(test_accuracy or {})
        self.info = dict(info or {})

    @property
    def attributes(self) -> list[str]:
        return list(self.models)

    def predict_proba(self, images, attributes: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Class probabilities per attribute: ``{attr: (N, n_classes)}``, columns = class indices.

        ``images``: faces ``(N, 3, H, W)`` or ``(3, H, W)`` in [0, 1], numpy or torch.
        """
        x = as_faces32(images)
        out = {}
        for a in attributes or self.attributes:
            model = self.models[a]
            p = model.predict_proba(_region_features(x, self.boxes[a]))
            full = np.zeros((len(x), len(self.classes[a])), dtype=np.float64)
            full[:, np.asarray(model.classes_, dtype=int)] = p  # classes never seen in training stay 0
            out[a] = full
        return out

    def predict(self, images, attributes: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Most likely class index per attribute: ``{attr: (N,) int}``."""
        return {a: p.argmax(1) for a, p in self.predict_proba(images, attributes).items()}

    def accuracy(self, images, attrs: dict, attributes: Sequence[str] | None = None) -> dict[str, float]:
        """Fraction of faces whose predicted class equals ``attrs[attr]`` (int arrays as from ``face_dataset``)."""
        pred = self.predict(images, attributes)
        return {a: float(np.mean(pred[a] == np.asarray(attrs[a]))) for a in pred}

    def prob_of_true(self, images, attrs: dict, attributes: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Probability given to the true class, per face: ``{attr: (N,)}`` -- a soft score for reconstructions."""
        proba = self.predict_proba(images, attributes)
        return {a: p[np.arange(len(p)), np.asarray(attrs[a], dtype=int)] for a, p in proba.items()}

    def __repr__(self) -> str:
        acc = ", ".join(f"{a}={v:.3f}" for a, v in self.test_accuracy.items())
        return f"FaceAttributeClassifiers({self.attributes}" + (f"; test accuracy {acc})" if acc else ")")


def _make_model(kind: str, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        # strong-ish L2 and a loose tolerance: as accurate as a tight fit on these
        # faces, several times faster, and steadier on noisy inputs
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=100, tol=1e-3))
    if kind == "mlp":
        return make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, batch_size=256, max_iter=60,
                          early_stopping=True, n_iter_no_change=6, random_state=seed),
        )
    raise ValueError(f"model={kind!r}: expected 'logistic' or 'mlp'")


def _augment(x32: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Copies of the faces with the degradations reconstructions show: Gaussian noise and a slight blur."""
    t = torch.from_numpy(x32)
    k = torch.tensor([0.25, 0.5, 0.25])
    k2 = (k[:, None] * k[None, :])[None, None].repeat(3, 1, 1, 1)
    blurred = F.conv2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), k2, groups=3).numpy()
    noisy = x32 + rng.normal(0.0, noise, size=x32.shape).astype(np.float32)
    return np.clip(np.concatenate([blurred, noisy]), 0, 1)


def train_attribute_classifiers(
    images,
    attrs: dict,
    attributes: Sequence[str] = CLASSIFIED_ATTRIBUTES,
    model: str = "logistic",
    augment: bool = True,
    noise: float = 0.05,
    seed: int = 0,
) -> FaceAttributeClassifiers:
    """Fit one classifier per attribute on its face region.

    Parameters
    ----------
    images : (N, 3, H, W) faces in [0, 1] (numpy or torch), resized to 32 x 32.
    attrs : dict of int arrays ``(N,)`` as returned by :func:`helpers.data.face_dataset`.
    attributes : which attributes (keys of :data:`REGION_BOXES`).
    model : ``"logistic"`` (standardised pixels -> multinomial logistic
        regression; the default, fast and accurate) or ``"mlp"`` (one hidden
        layer of 128).
    augment : also train on a blurred copy and a noisy copy (std ``noise``) of
        every face, so that the classifiers tolerate imperfect reconstructions.
    seed : random seed (noise, MLP initialisation).
    """
    x = as_faces32(images)
    rng = np.random.default_rng(seed)
    if augment:
        x = np.concatenate([x, _augment(x, rng, noise)])
    models = {}
    for a in attributes:
        if a not in REGION_BOXES:
            raise ValueError(f"attribute {a!r}: no region box; expected one of {list(REGION_BOXES)}")
        y = np.asarray(attrs[a], dtype=np.int64)
        if augment:
            y = np.concatenate([y, y, y])
        m = _make_model(model, seed)
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m.fit(_region_features(x, REGION_BOXES[a]), y)
        models[a] = m
    return FaceAttributeClassifiers(models, info={"model": model, "augment": augment, "n_train": len(attrs[attributes[0]])})


def _classifier_path(cache_dir, model: str, n_train: int | None, n_test: int | None) -> Path:
    import sklearn

    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    tag = f"{FACE_DATA_VERSION}_{MEASURES_VERSION}_{model}_n{n_train or 'all'}_t{n_test or 'all'}_sk{sklearn.__version__}"
    return base / "models" / f"face_classifiers_{tag}.npz"


# Fitted attributes that define each estimator's predictions, saved as plain arrays.
_SCALER_ARRAYS = ("mean_", "scale_", "var_")
_LOGISTIC_ARRAYS = ("coef_", "intercept_", "classes_", "n_iter_")


def _pipeline_to_arrays(pipe) -> tuple[dict[str, np.ndarray], dict]:
    """A fitted ``StandardScaler -> LogisticRegression | MLPClassifier`` pipeline as arrays plus JSON."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    (_, scaler), (_, est) = pipe.steps
    arrays = {f"scaler.{k}": np.asarray(getattr(scaler, k)) for k in _SCALER_ARRAYS}
    meta = {"scaler_params": scaler.get_params(), "n_features_in": int(scaler.n_features_in_),
            "n_samples_seen": int(np.asarray(scaler.n_samples_seen_).reshape(-1)[0]),
            "params": {k: v for k, v in est.get_params().items()}}
    if isinstance(est, LogisticRegression):
        meta["kind"] = "logistic"
        arrays.update({f"est.{k}": np.asarray(getattr(est, k)) for k in _LOGISTIC_ARRAYS})
    elif isinstance(est, MLPClassifier):
        meta.update(kind="mlp", n_layers=int(est.n_layers_), n_outputs=int(est.n_outputs_),
                    out_activation=est.out_activation_, n_coefs=len(est.coefs_))
        arrays["est.classes_"] = np.asarray(est.classes_)
        for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_)):
            arrays[f"est.coefs_.{i}"], arrays[f"est.intercepts_.{i}"] = np.asarray(w), np.asarray(b)
    else:
        raise TypeError(f"cannot store a {type(est).__name__}: expected LogisticRegression or MLPClassifier")
    return arrays, meta


def _pipeline_from_arrays(arrays: dict[str, np.ndarray], meta: dict):
    """Rebuild the fitted pipeline of :func:`_pipeline_to_arrays` (same arrays, so the same predictions)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import LabelBinarizer, StandardScaler

    scaler = StandardScaler(**meta["scaler_params"])
    for k in _SCALER_ARRAYS:
        setattr(scaler, k, arrays[f"scaler.{k}"])
    scaler.n_features_in_ = meta["n_features_in"]
    scaler.n_samples_seen_ = np.int64(meta["n_samples_seen"])
    if meta["kind"] == "logistic":
        est = LogisticRegression(**meta["params"])
        for k in _LOGISTIC_ARRAYS:
            setattr(est, k, arrays[f"est.{k}"])
    elif meta["kind"] == "mlp":
        est = MLPClassifier(**meta["params"])
        est.classes_ = arrays["est.classes_"]
        est.coefs_ = [arrays[f"est.coefs_.{i}"] for i in range(meta["n_coefs"])]
        est.intercepts_ = [arrays[f"est.intercepts_.{i}"] for i in range(meta["n_coefs"])]
        est.n_layers_, est.n_outputs_, est.out_activation_ = meta["n_layers"], meta["n_outputs"], meta["out_activation"]
        est._label_binarizer = LabelBinarizer().fit(est.classes_)
    else:
        raise ValueError(f"unknown classifier kind {meta['kind']!r}")
    est.n_features_in_ = meta["n_features_in"]
    return make_pipeline(scaler, est)


def save_classifiers(clf: FaceAttributeClassifiers, path) -> Path:
    """Store ``clf`` as one ``.npz`` of plain arrays (no pickles; the JSON description is its ``meta`` entry).

    Written atomically. :func:`load_classifiers` reads it back with ``allow_pickle=False``.
    """
    import json

    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": "face-classifiers-v1", "boxes": {k: list(v) for k, v in clf.boxes.items()},
            "test_accuracy": clf.test_accuracy, "info": clf.info, "models": {}}
    for a, model in clf.models.items():
        arr, m = _pipeline_to_arrays(model)
        arrays.update({f"{a}/{k}": v for k, v in arr.items()})
        meta["models"][a] = m
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name[:-4] + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_classifiers(path) -> FaceAttributeClassifiers:
    """Read classifiers written by :func:`save_classifiers` (``np.load(..., allow_pickle=False)``: no code runs)."""
    import json

    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(data.pop("meta").tobytes().decode())
    if meta.get("format") != "face-classifiers-v1":
        raise ValueError(f"format {meta.get('format')!r}, expected 'face-classifiers-v1'")
    models = {}
    for a, m in meta["models"].items():
        prefix = f"{a}/"
        models[a] = _pipeline_from_arrays({k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}, m)
    return FaceAttributeClassifiers(models, meta["boxes"], meta["test_accuracy"], meta.get("info"))


def load_or_train_classifiers(
    cache_dir=None,
    model: str = "logistic",
    n_train: int | None = None,
    n_test: int | None = None,
    progress: bool = True,
    retrain: bool = False,
) -> FaceAttributeClassifiers:
    """The attribute classifiers, trained once on the training faces and cached.

    On first use this builds (or loads) ``face_dataset("train", n=n_train)`` and
    ``face_dataset("test", n=n_test)`` (defaults: 20000 and 512 faces), fits :func:`train_attribute_classifiers`, stores
    the test accuracy in ``.test_accuracy`` and saves everything as plain arrays
    (:func:`save_classifiers`, an ``.npz`` without pickles) to ``<cache_dir>/models/``
    (default cache: ``$DIFFUSION_COURSE_CACHE`` or ``~/.cache/diffusion-prior-course``).
    The file name holds the data version, the recipe version, the model kind, ``n_train``
    and the scikit-learn version. A cache file that cannot be read (truncated, corrupt) is
    re-trained and overwritten, with a warning naming it.
    """
    path = _classifier_path(cache_dir, model, n_train, n_test)
    if path.exists() and not retrain:
        try:
            return load_classifiers(path)
        except Exception as err:  # noqa: BLE001 - any unreadable cache is rebuilt
            import warnings

            warnings.warn(f"the classifier cache {path} cannot be read ({type(err).__name__}: {err}); "
                          "re-training the classifiers and overwriting it", RuntimeWarning, stacklevel=2)
    x_tr, a_tr = face_dataset("train", n=n_train, cache_dir=cache_dir, progress=progress)
    x_te, a_te = face_dataset("test", n=n_test, cache_dir=cache_dir, progress=progress)
    clf = train_attribute_classifiers(x_tr, a_tr, model=model)
    clf.info["n_test"] = len(x_te)
    clf.test_accuracy = clf.accuracy(x_te, a_te)
    save_classifiers(clf, path)
    return clf


def eye_symmetry(images, left_box: Sequence[int] = LEFT_EYE_BOX, eps: float = 1e-3) -> np.ndarray:
    """Per-face eye symmetry in [-1, 1]: 1 when the left eye equals the mirrored right eye.

    Let ``a`` be the left-eye region (:data:`LEFT_EYE_BOX`) and ``b`` the
    right-eye region (:data:`RIGHT_EYE_BOX`) flipped left-right, each minus its
    per-channel mean (so the skin colour does not count). The score is::

        s = 2 <a, b> / (|a|^2 + |b|^2 + eps)  =  1 - |a - b|^2 / (|a|^2 + |b|^2 + eps)

    i.e. one minus the squared L2 distance normalised by the two patches'
    energies: 1 for identical eyes, ~0 for unrelated patches (noise), negative
    when one is the other's negative. Unlike a plain correlation it also drops
    when one eye is much fainter than the other. The cartoon faces are drawn
    mirror-symmetric (only symmetric eye types are allowed), so real faces score
    close to 1 (slightly less with asymmetric eyebrows such as UP_DOWN or a
    side-parted fringe): on the 512 test faces the mean is 0.99 (minimum 0.77),
    with the left eye swapped for another face's eye type 0.24, with the left
    eye erased to skin 0.0, for uniform noise 0.0. ``eps`` keeps a blank region
    (no eyes at all) at 0. Noise lowers the score too (Gaussian noise of std 0.1
    brings real faces to ~0.6): compare methods at equal noise levels.

    ``images``: faces ``(N, 3, H, W)`` or ``(3, H, W)`` in [0, 1], numpy or
    torch; returns float64 ``(N,)``.
    """
    x = as_faces32(images).astype(np.float64)
    r0, r1, c0, c1 = left_box
    rs, cs = box_slices(left_box)
    rs2, cs2 = box_slices((r0, r1, FACE_SIZE - c1, FACE_SIZE - c0))
    a = x[:, :, rs, cs]
    b = x[:, :, rs2, cs2][..., ::-1]
    a = a - a.mean(axis=(2, 3), keepdims=True)
    b = b - b.mean(axis=(2, 3), keepdims=True)
    num = 2 * (a * b).sum(axis=(1, 2, 3))
    den = (a * a).sum(axis=(1, 2, 3)) + (b * b).sum(axis=(1, 2, 3)) + eps
    return num / den
