"""The evaluation harness: run methods × tasks × noise levels × images × seeds, store every score, resume.

:func:`run_evaluation` takes an :class:`EvalConfig`, chooses each method's parameter on the
selection images (:mod:`helpers.evaluation.selection`: the best value of its grid, the grid
widened past an edge), runs the chosen settings on the reported images and writes the outputs
(:mod:`helpers.evaluation.report` writes the summary and figures).

**The results store**: ``results.csv`` holds one row per (method, params, task, noise, image,
seed) -- the key (:data:`KEY_FIELDS`). Rows are appended, flushed and synced as each batch
finishes; a restarted run reads the file and skips every key already there, so an interrupted
run loses at most one batch, and a rerun of the same command computes nothing. Values added to
a grid by widening are keyed like any other (``lambda=9;rule=langevin;steps=100``).

**What the rows depend on beyond their key** -- the prior (name and a hash of its weights), the
data set and the images at each index, the LPIPS protocol (nets, minimum size), the face
measures, ScoreALD's likelihood weight and step rule, the measurement-noise seeds -- is stored as
``fingerprint.json`` (:func:`results_fingerprint`) in the folder. A run into a folder written by
another configuration stops with :class:`ResultsMismatchError` naming the differing fields. A
folder without a fingerprint (written before fingerprints existed) is adopted when its
``config.json`` agrees (or, with no ``config.json``, when its rows name the same prior); reading
results (:func:`read_results`) needs no fingerprint.

**One writer per folder**: ``evaluate.lock`` holds the pid, host and start time of the process
writing the folder; a second process stops with :class:`ResultsLockedError` saying which process
holds it. A lock left by a process that no longer runs (same host) is taken over with a warning.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import hashlib
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .. import samplers
from ..operators import ImageSpaceWarning
from .selection import MAX_WIDENINGS, GridChoice, ValueRange, choose_on_grid, key_value
from .tasks import DEFAULT_TASKS, TASKS, Task, baseline_reconstruction, build_task

__all__ = [
    "METHODS",
    "METHOD_NAMES",
    "CSV_FIELDS",
    "KEY_FIELDS",
    "EvalConfig",
    "EvalResult",
    "run_evaluation",
    "read_results",
    "per_image_values",
    "summarize",
    "MIN_SELECT_IMAGES",
    "results_fingerprint",
    "ResultsMismatchError",
    "ResultsLockedError",
    "FINGERPRINT_FILE",
    "LOCK_FILE",
]

METHODS = ("measurement", "baseline", "sdedit", "score_ald", "dps")
METHOD_NAMES = {
    "measurement": "measurement",
    "baseline": "classical baseline",
    "sdedit": "SDEdit",
    "score_ald": "ScoreALD",
    "dps": "DPS",
}
#: fewer selection images than this make a choice among several values a coin toss; the CLI refuses them
MIN_SELECT_IMAGES = 8


# ---------------------------------------------------------------------------- configuration
@dataclass
class EvalConfig:
    """Settings of :func:`run_evaluation`; the CLI's flags map one to one onto these fields."""

    prior: str = "faces"
    dataset: Optional[str] = None  # "faces" | "mnist"; default from the prior's name
    tasks: Sequence[str] = DEFAULT_TASKS
    noise_levels: Sequence[float] = (0.05, 0.0)
    methods: Sequence[str] = METHODS
    n_images: int = 16
    n_select: int = 8  # selection images (disjoint from the reported ones); the CLI refuses < MIN_SELECT_IMAGES
    steps: int = 100
    seeds: Sequence[int] = (0,)
    sdedit_t0s: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
    sdedit_sweep_on_report: bool = True
    dps_step_sizes: Sequence[float] = (1.0,)
    ald_step_sizes: Sequence[float] = (1.0,)
    ald_step_rule: str = "langevin"
    wiener_balances: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1)
    select_by: str = "psnr"
    # widening steps (×3) past the edge of a grid whose best value is at that edge (0: never widen)
    max_widenings: int = MAX_WIDENINGS
    lpips_nets: Sequence[str] = ("alex", "vgg")
    face_measures: Optional[bool] = None  # None: on for the faces data set
    batch_size: int = 8
    device: Optional[str] = None
    out_dir: Optional[str] = None
    plots: bool = True
    progress: bool = True
    command: Optional[str] = None
    keep_images: bool = False  # keep the reconstructions of the reported images in EvalResult.images
    # steps per sampler ({"sdedit": 50, "dps": 250, ...}, e.g. helpers.steps_curve.CPU_STEPS); others use `steps`
    method_steps: Optional[dict] = None

    def steps_for(self, method: str) -> int:
        """The number of sampler steps of ``method``: ``method_steps[method]`` if given, else ``steps``."""
        return int((self.method_steps or {}).get(method, self.steps))

    def validate(self) -> None:
        tasks = list(self.tasks)
        if not tasks:
            raise ValueError("tasks is empty")
        for t in tasks:
            if t not in TASKS:
                raise ValueError(f"unknown task {t!r}; choose from {list(TASKS)}")
        for m in self.methods:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}; choose from {list(METHODS)}")
        if not self.methods:
            raise ValueError("methods is empty")
        for s in self.noise_levels:
            if not (isinstance(s, (int, float)) and s >= 0):
                raise ValueError(f"noise levels must be >= 0 (model space), got {s!r}")
        if self.n_images < 1 or self.n_select < 0:
            raise ValueError("n_images must be >= 1 and n_select >= 0")
        if not self.seeds:
            raise ValueError("seeds is empty")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        for m, n in (self.method_steps or {}).items():
            if m not in ("sdedit", "score_ald", "dps"):
                raise ValueError(f"method_steps names {m!r}; only the samplers 'sdedit', 'score_ald', 'dps' take steps")
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"method_steps[{m!r}] must be an integer >= 1, got {n!r}")
        for t0 in self.sdedit_t0s:
            if not 0 < t0 <= 1:
                raise ValueError(f"SDEdit t0 must be in (0, 1], got {t0!r}")
        if self.select_by not in ("psnr", "ssim", "lpips_alex", "lpips_vgg"):
            raise ValueError("select_by must be 'psnr', 'ssim', 'lpips_alex' or 'lpips_vgg'")
        if self.select_by.startswith("lpips") and self.select_by[6:] not in self.lpips_nets:
            raise ValueError(f"select_by={self.select_by!r} needs LPIPS net {self.select_by[6:]!r} in lpips_nets")
        for net in self.lpips_nets:
            if net not in ("alex", "vgg"):
                raise ValueError(f"unknown LPIPS net {net!r}; use 'alex' and/or 'vgg'")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not isinstance(self.max_widenings, int) or self.max_widenings < 0:
            raise ValueError(f"max_widenings must be an integer >= 0, got {self.max_widenings!r}")
        if self.n_select == 0:
            for m in self.methods_choosing():
                raise ValueError(
                    f"{m} has several parameter values to choose from but n_select=0: give selection "
                    "images (--n-select) or a single value"
                )

    def methods_choosing(self) -> list:
        """The methods given several values of their parameter: they choose one on the selection images."""
        grids = {
            "sdedit": self.sdedit_t0s, "dps": self.dps_step_sizes, "score_ald": self.ald_step_sizes,
            "baseline": self.wiener_balances if "deblur" in self.tasks else (0,),
        }
        return [m for m in self.methods if len(set(grids.get(m, (0,)))) > 1]


# ---------------------------------------------------------------------------- results file
CSV_FIELDS = [
    "method", "params", "task", "noise", "image", "seed", "split", "status",
    "psnr", "ssim", "lpips_alex", "lpips_vgg", "eyes_ok", "mouth_ok", "eye_symmetry",
    "seconds", "nfe", "backward", "batch", "prior", "finished",
]
KEY_FIELDS = ("method", "params", "task", "noise", "image", "seed")

def _noise_str(noise: float) -> str:
    return f"{float(noise):g}"


def _key(row: dict) -> tuple:
    return (row["method"], row["params"], row["task"], _noise_str(float(row["noise"])), int(row["image"]), int(row["seed"]))


def read_results(path) -> list[dict]:
    """The complete rows of a ``results.csv`` (a row cut off by an interruption is dropped)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is not None and list(reader.fieldnames) != CSV_FIELDS:
            raise ValueError(
                f"{path} has columns {reader.fieldnames}, expected {CSV_FIELDS}: it was written by another "
                "version of helpers.evaluate; use another --out folder"
            )
        rows = []
        for row in reader:
            if None in row or any(row.get(k) in (None, "") for k in KEY_FIELDS + ("finished",)):
                continue  # truncated line
            rows.append(row)
    return rows


def _repair_csv(path: Path, rows: list[dict]) -> None:
    """Rewrite the file with its complete rows only, when an interruption left a partial line."""
    with open(path, newline="") as fh:
        n_lines = sum(1 for _ in csv.reader(fh))
    text = path.read_text()
    if n_lines - 1 == len(rows) and text.endswith("\n"):
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows in one write, flushed and synced, so that an interruption loses at most this batch."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        w.writeheader()
    w.writerows(rows)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, buf.getvalue().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- what produced the rows
FINGERPRINT_FILE = "fingerprint.json"
LOCK_FILE = "evaluate.lock"
#: ScoreALD's likelihood weight as the harness runs it (score_ald's default)
ALD_LIKELIHOOD_WEIGHT = "operator"
#: fields of config.json (written by every version) that a folder without a fingerprint must match
_LEGACY_FIELDS = ("prior", "dataset", "lpips_nets", "face_measures", "ald_step_rule")


class ResultsMismatchError(ValueError):
    """The ``--out`` folder holds rows produced by another configuration (prior, data, LPIPS, ...)."""


class ResultsLockedError(RuntimeError):
    """Another process is writing the ``--out`` folder."""


def _prior_digest(prior) -> str:
    """SHA-256 (16 hex digits) of the prior's weights: the UNet's state dict, or a Gaussian prior's mean and covariance."""
    h = hashlib.sha256()
    module = getattr(prior, "unet", None)
    if isinstance(module, torch.nn.Module):
        tensors = sorted(module.state_dict().items())
    else:
        tensors = sorted((k, v) for k, v in vars(prior).items() if torch.is_tensor(v))
    if not tensors:
        return "unknown"
    for name, t in tensors:
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().to(torch.float32 if t.is_floating_point() else t.dtype).numpy().tobytes())
    return h.hexdigest()[:16]


def _image_hashes(images: torch.Tensor) -> list:
    """A short hash per image (float32 bytes): the images the rows of each index were computed on."""
    arr = images.detach().cpu().float().numpy()
    return [hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:12] for a in arr]


def results_fingerprint(cfg: EvalConfig, prior, images: torch.Tensor, face_measures: bool) -> dict:
    """What determines a row of ``results.csv`` beyond its key (method, params, task, noise, image, seed)."""
    from ..metrics import LPIPS_MIN_SIZE

    return {
        "version": 1,
        "prior": str(cfg.prior),
        "prior_name": str(getattr(prior, "name", cfg.prior)),
        "prior_weights_sha256": _prior_digest(prior),
        "image_shape": [int(s) for s in prior.image_shape],
        "dataset": cfg.dataset,
        "lpips_nets": sorted(str(n) for n in cfg.lpips_nets),
        "lpips_min_size": int(LPIPS_MIN_SIZE),
        "face_measures": bool(face_measures),
        "ald_likelihood_weight": ALD_LIKELIHOOD_WEIGHT,
        "ald_step_rule": cfg.ald_step_rule,
        "noise_seed": "7000000 + image",
        "sample_seed": "1000003*seed + image",
        "image_hashes": _image_hashes(images),
    }


def _differences(stored: dict, current: dict) -> list:
    """'field: folder has X, this run Y' for each field that differs (images compared where both have one)."""
    out = []
    for k in sorted(set(stored) | set(current)):
        a, b = stored.get(k), current.get(k)
        if k == "image_hashes":
            a, b = a or [], b or []
            bad = [i for i, (u, v) in enumerate(zip(a, b)) if u != v]
            if bad:
                out.append(f"image_hashes: the images differ at index {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
        elif a != b:
            out.append(f"{k}: folder has {a!r}, this run {b!r}")
    return out


def _check_fingerprint(out: Path, cfg: EvalConfig, prior, current: dict) -> None:
    """Write the fingerprint into a new folder, check it against an existing one, adopt a folder without one."""
    fp_path, csv_path, cfg_path = out / FINGERPRINT_FILE, out / "results.csv", out / "config.json"
    hint = f"use a separate --out folder for this configuration (or delete {out} to start over)"
    hint_ = hint[0].upper() + hint[1:]
    if fp_path.exists():
        try:
            stored = json.loads(fp_path.read_text())
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
        except (ValueError, OSError) as err:
            raise ResultsMismatchError(f"{fp_path} is not a readable fingerprint ({err}); {hint}") from None
        diff = _differences(stored, current)
        if diff:
            raise ResultsMismatchError(f"{out} holds results of another configuration: " + "; ".join(diff) + f". {hint_}")
        if len(current["image_hashes"]) > len(stored.get("image_hashes") or []):  # more images now: remember them
            _write_json(fp_path, current)
        return
    rows = read_results(csv_path)
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except ValueError as err:
            raise ResultsMismatchError(f"{cfg_path} is not JSON ({err}), so the rows of {out} cannot be checked; {hint}") from None
        now = dataclasses.asdict(cfg)
        diff = [f"{k}: folder has {old.get(k)!r}, this run {now.get(k)!r}" for k in _LEGACY_FIELDS
                if k in old and _norm(old.get(k)) != _norm(now.get(k))]
        if "prior_name" in old and old["prior_name"] != current["prior_name"]:
            diff.append(f"prior_name: folder has {old['prior_name']!r}, this run {current['prior_name']!r}")
        if diff:
            raise ResultsMismatchError(f"{out} holds results of another configuration (from its config.json): "
                                       + "; ".join(diff) + f". {hint_}")
    elif rows:
        names = sorted({r.get("prior", "") for r in rows})
        if names != [current["prior_name"]]:
            raise ResultsMismatchError(f"{out}/results.csv holds rows of prior(s) {names}, this run's prior is "
                                       f"{current['prior_name']!r}; {hint}")
        warnings.warn(f"{out} has results.csv but neither {FINGERPRINT_FILE} nor config.json: adopting its rows "
                      f"(they name the same prior, {current['prior_name']!r})", stacklevel=3)
    _write_json(fp_path, current)


def _norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class _FolderLock:
    """``evaluate.lock`` in the results folder: created exclusively, removed on exit; a dead holder's is taken over."""

    def __init__(self, out: Path, command: str = ""):
        self.path, self.command, self.held = out / LOCK_FILE, command, False

    def __enter__(self):
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "command": self.command[:300]}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    holder = json.loads(self.path.read_text())
                    pid, host = int(holder["pid"]), str(holder["host"])
                except (ValueError, KeyError, TypeError, OSError):
                    holder, pid, host = None, None, None
                if holder is None:
                    warnings.warn(f"{self.path} is unreadable (left by an interrupted process?): taking it over", stacklevel=3)
                elif host == me["host"] and not _pid_alive(pid):
                    warnings.warn(f"{self.path} was left by process {pid} (started {holder.get('started')}), which no "
                                  "longer runs: taking it over", stacklevel=3)
                elif pid == me["pid"] and host == me["host"]:
                    raise ResultsLockedError(f"{self.path.parent} is already being written by this process "
                                             "(a nested run_evaluation into the same folder)") from None
                else:
                    raise ResultsLockedError(
                        f"{self.path.parent} is being written by process {pid} on {host} (started "
                        f"{holder.get('started')}: {holder.get('command', '')}). Wait for it to finish or use another "
                        f"--out folder; if that process is gone, delete {self.path}"
                    ) from None
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(me) + "\n")
            self.held, self.me = True, me
            return self
        raise ResultsLockedError(f"could not take the lock {self.path}: another process keeps creating it")

    def __exit__(self, *exc):
        if self.held:
            try:
                if json.loads(self.path.read_text()).get("pid") == self.me["pid"]:
                    self.path.unlink()
            except (OSError, ValueError):
                pass
            self.held = False
        return False


# ---------------------------------------------------------------------------- plan
@dataclass
class _Setting:
    method: str
    params: str  # the key string, e.g. "t0=0.4;steps=100"
    values: dict  # the parsed values, e.g. {"t0": 0.4}
    label: str
    deterministic: bool
    value: Optional[float] = None  # the value of the method's chosen parameter (t0, λ, ζ′, balance); None: nothing to choose


def _fmt(v: float) -> str:
    return f"{float(v):g}"


#: the parameter each method chooses on the selection images, as the CLI and the summary name it
CHOSEN_PARAMETER = {"baseline": "Wiener balance", "sdedit": "t0", "score_ald": "λ", "dps": "ζ′"}


def _grid_values(method: str, task: Task, cfg: EvalConfig) -> list:
    """The values of the parameter ``method`` chooses on ``task`` ([None]: a single setting, nothing to choose)."""
    if method == "baseline" and task.kind == "deblur":
        return [float(b) for b in cfg.wiener_balances]
    return {
        "sdedit": [float(t) for t in cfg.sdedit_t0s],
        "score_ald": [float(s) for s in cfg.ald_step_sizes],
        "dps": [float(s) for s in cfg.dps_step_sizes],
    }.get(method, [None])


def _setting(method: str, task: Task, cfg: EvalConfig, value: Optional[float] = None) -> _Setting:
    """The setting of ``method`` on ``task`` with its chosen parameter at ``value``."""
    if method == "measurement":
        what = {"deblur": "blurred y", "inpaint": "masked y", "sr": "nearest-upsampled y"}[task.kind]
        return _Setting(method, "pinv", {}, f"measurement ({what})", True)
    if method == "baseline":
        if task.kind == "deblur":
            b = key_value(value)
            return _Setting(method, f"wiener;balance={_fmt(b)}", {"balance": b}, f"Wiener (balance {_fmt(b)})", True, b)
        if task.kind == "inpaint":
            return _Setting(method, "biharmonic", {}, "biharmonic inpainting", True)
        return _Setting(method, "bicubic", {}, "bicubic upsampling", True)
    v = key_value(value)
    steps = cfg.steps_for(method)
    if method == "sdedit":
        return _Setting(method, f"t0={_fmt(v)};steps={steps}", {"t0": v}, f"SDEdit (t0 = {_fmt(v)})", False, v)
    if method == "score_ald":
        return _Setting(method, f"lambda={_fmt(v)};rule={cfg.ald_step_rule};steps={steps}", {"step_size": v},
                        f"ScoreALD (λ = {_fmt(v)})", False, v)
    if method == "dps":
        return _Setting(method, f"zeta={_fmt(v)};steps={steps}", {"step_size": v}, f"DPS (ζ′ = {_fmt(v)})", False, v)
    raise ValueError(method)


def _settings(method: str, task: Task, cfg: EvalConfig) -> list[_Setting]:
    """The settings of ``method``'s grid on ``task``, before any widening."""
    return [_setting(method, task, cfg, v) for v in _grid_values(method, task, cfg)]


def _value_range(method: str, prior) -> ValueRange:
    """Where ``method``'s parameter may go when its grid is widened: t0 in (0, 1] and at least one
    training step of noise; step sizes and the Wiener balance above 0."""
    if method == "sdedit":
        T = int(getattr(getattr(prior, "schedule", None), "num_train_timesteps", 1000))
        return ValueRange(low=0.5 / max(T - 1, 1), high=1.0)
    return ValueRange()


def _sample_seed(image: int, seed: int) -> int:
    """Sampler seed of an image: independent of the batch it runs in."""
    return 1_000_003 * int(seed) + int(image)


@contextlib.contextmanager
def _known_model_space():
    """Silence :class:`ImageSpaceWarning` where the images are model space by construction (x = 2·image − 1).

    A light held-out face can have no pixel below 0 after blurring (2 of the 256 test faces); the
    warning is for a student's [0, 1] tensor, not for the harness's own measurements.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageSpaceWarning)
        yield


def _noise_seed(image: int) -> int:
    """Measurement-noise seed of an image: the same for every method and seed."""
    return 7_000_000 + int(image)


# ---------------------------------------------------------------------------- choosing on the selection images
@dataclass
class ParameterSearch:
    """How one (task, noise, method) got its setting: the settings tried on the selection images, the outcome."""

    settings: list  # the _Settings tried, by parameter value (just the one for a method with nothing to choose)
    chosen: _Setting
    choice: Optional[GridChoice] = None  # None: a single value, nothing was chosen
    grid: list = field(default_factory=list)  # the parameter values given (before widening)

    def outcome(self) -> str:
        """``"interior"``, ``"widened ×2 to interior"``, ``"edge: next value diverged"``, ... (selection.GridChoice)."""
        return self.choice.describe() if self.choice is not None else "single value (not searched)"

    def score(self, s: _Setting) -> float:
        """The selection score of setting ``s`` (NaN: diverged)."""
        return dict(self.choice.tried).get(s.value, math.nan) if self.choice is not None else math.nan

    def report_settings(self, sdedit_sweep: bool) -> list:
        """What runs on the reported images: the chosen setting; SDEdit's whole sweep (widened values
        included, those that diverged on the selection images left out) when ``sdedit_sweep``."""
        if self.chosen.method != "sdedit" or not sdedit_sweep or self.choice is None:
            return [self.chosen]
        return [s for s in self.settings if s.value in self.grid or math.isfinite(self.score(s))]

    def as_json(self) -> dict:
        return {
            "chosen": self.chosen.params,
            "parameter": CHOSEN_PARAMETER.get(self.chosen.method, ""),
            "grid": self.grid,
            "tried": {_fmt(v): (sc if math.isfinite(sc) else "diverged") for v, sc in self.choice.tried},
            "widened": self.choice.widened,
            "outcome": self.outcome(),
        }


def _choose_setting(runner: "_Runner", task: Task, noise: float, method: str, select_idx: list, report_idx: list
                    ) -> ParameterSearch:
    """Run ``method``'s grid on the selection images and choose (widening past an edge optimum)."""
    cfg = runner.cfg
    values = _grid_values(method, task, cfg)
    if len(set(values)) == 1:
        s = _setting(method, task, cfg, values[0])
        return ParameterSearch([s], s, None, [] if values[0] is None else [s.value])
    tried: dict = {}

    def score(value: float) -> float:
        s = _setting(method, task, cfg, value)
        if runner.bar is not None and s.value not in [key_value(v) for v in values]:  # a widened value: more work
            sweep = method == "sdedit" and cfg.sdedit_sweep_on_report
            runner.bar.total += runner.n_seeds(s) * (len(select_idx) + len(report_idx) * sweep)
            runner.bar.refresh()
        rows = runner.run_unit(s, task, noise, "select", select_idx)
        tried[s.value] = s
        if any(r["status"] != "ok" for r in rows):
            return math.nan  # a value that diverges on any selection image is never chosen
        return summarize(rows, cfg.select_by)[0]

    choice = choose_on_grid(values, score, higher_is_better=not cfg.select_by.startswith("lpips"),
                            value_range=_value_range(method, runner.prior), max_widenings=cfg.max_widenings)
    settings = [tried[v] for v in sorted(tried)]
    return ParameterSearch(settings, tried[key_value(choice.chosen)], choice, [key_value(v) for v in values])


# ---------------------------------------------------------------------------- running
@dataclass
class EvalResult:
    """What :func:`run_evaluation` did: paths, the chosen parameters, the rows it summarised."""

    out_dir: Path
    csv_path: Path
    summary_path: Path
    selected: dict  # (task, noise_str, method) -> params string
    rows: list  # the CSV rows of this configuration (reported and selection images)
    computed: int  # number of (image, seed) reconstructions computed in this call
    skipped: int  # number found in results.csv and not recomputed
    plots: list = field(default_factory=list)
    # with ``keep_images``: {(task, noise_str, method): {image index: (C, H, W) tensor in image space [0, 1]}},
    # the chosen parameters, first seed, reported images computed in this call (not those found in results.csv)
    images: dict = field(default_factory=dict)
    # {(task, noise_str, method): ParameterSearch}: the settings tried on the selection images and the outcome
    searches: dict = field(default_factory=dict)


def _load_data(cfg: EvalConfig, n: int, image_shape) -> tuple[np.ndarray, Optional[dict]]:
    name = cfg.dataset
    if name == "faces":
        from ..data import face_dataset

        images, attrs = face_dataset("test", size=int(image_shape[-1]), n=max(n, 1), progress=cfg.progress)
        return images[:n], {k: v[:n] for k, v in attrs.items()}
    if name == "mnist":
        from ..data import mnist_digits

        images, labels = mnist_digits("heldout", size=int(image_shape[-1]))
        if len(images) < n:
            raise ValueError(f"mnist heldout has {len(images)} digits; asked for {n}")
        return images[:n], {"label": labels[:n]}
    raise ValueError(
        f"no data set for prior {cfg.prior!r}: pass dataset='faces' or 'mnist' (--dataset), or give run_evaluation "
        "the images"
    )


class _Runner:
    def __init__(self, cfg: EvalConfig, prior, images: torch.Tensor, attrs, classifiers, csv_path: Path):
        self.cfg, self.prior, self.images, self.attrs, self.clf = cfg, prior, images, attrs, classifiers
        self.csv_path = csv_path
        self.done = {_key(r): r for r in read_results(csv_path)}
        if csv_path.exists():
            _repair_csv(csv_path, list(self.done.values()))
        self.computed = 0
        self.skipped = 0
        self.measurements: dict = {}
        self.bar = None
        self.kept: dict = {}  # (method, params, task, noise_str, seed) -> {image: (C, H, W) in [0, 1]}

    # -- measurement y per (task, noise, image), the same for every method and seed
    def measurement(self, task: Task, noise: float, idx: list[int]) -> torch.Tensor:
        ys = []
        for i in idx:
            key = (task.name, _noise_str(noise), i)
            if key not in self.measurements:
                x = self.images[i : i + 1] * 2 - 1
                with _known_model_space():
                    self.measurements[key] = task.operator.measure(x, noise_std=float(noise), seed=_noise_seed(i))
            ys.append(self.measurements[key])
        return torch.cat(ys)

    def reconstruct(self, s: _Setting, task: Task, noise: float, y: torch.Tensor, seeds: list[int]):
        """(x_hat in model space on the CPU, nfe, backward passes, status)."""
        op = task.operator
        if s.method == "measurement":
            return op.pseudo_inverse(y).clamp(-1, 1), 0, 0, "ok"
        if s.method == "baseline":
            return baseline_reconstruction(task, y, s.values), 0, 0, "ok"
        try:
            with _known_model_space():
                return self._run_sampler(s, task, noise, y, seeds)
        except samplers.SamplerDivergedError:
            return None, 0, 0, "diverged"

    def _run_sampler(self, s: _Setting, task: Task, noise: float, y: torch.Tensor, seeds: list[int]):
        cfg, prior, op = self.cfg, self.prior, task.operator
        if s.method == "sdedit":
            r = samplers.sdedit(prior, op, y, start_time=s.values["t0"], num_steps=cfg.steps_for("sdedit"), seed=seeds, progress=False)
            return r.sample.cpu().float(), r.nfe, 0, "ok"
        if s.method == "score_ald":
            r = samplers.score_ald(prior, op, y, num_steps=cfg.steps_for("score_ald"), step_size=s.values["step_size"],
                                   noise_std=float(noise), step_rule=cfg.ald_step_rule, seed=seeds, progress=False)
            return r.sample.cpu().float(), r.nfe, 0, "ok"
        if s.method == "dps":
            r = samplers.dps(prior, op, y, num_steps=cfg.steps_for("dps"), step_size=s.values["step_size"], seed=seeds,
                             progress=False)
            return r.sample.cpu().float(), r.nfe, r.nfe, "ok"
        raise ValueError(s.method)

    def metrics(self, x_hat: Optional[torch.Tensor], idx: list[int]) -> list[dict]:
        from ..metrics import lpips_distance, psnr, ssim

        n = len(idx)
        out = [dict() for _ in range(n)]
        if x_hat is None:
            return out
        truth = self.images[idx]
        xi = ((x_hat + 1) / 2).clamp(0, 1)
        cols = {"psnr": psnr(xi, truth, data_range=1.0), "ssim": ssim(xi, truth, data_range=1.0)}
        for net in self.cfg.lpips_nets:
            cols[f"lpips_{net}"] = lpips_distance(xi, truth, net=net, data_range=1.0)
        if self.clf is not None:
            from ..face_measures import eye_symmetry

            pred = self.clf.predict(xi, ["eyes", "mouth"])
            cols["eyes_ok"] = (pred["eyes"] == np.asarray(self.attrs["eyes"])[idx]).astype(float)
            cols["mouth_ok"] = (pred["mouth"] == np.asarray(self.attrs["mouth"])[idx]).astype(float)
            cols["eye_symmetry"] = eye_symmetry(xi)
        for k, v in cols.items():
            v = np.atleast_1d(np.asarray(v, dtype=float))
            for j in range(n):
                out[j][k] = f"{v[j]:.6g}"
        return out

    def n_seeds(self, s: _Setting) -> int:
        """Seeds a setting runs with: one for a deterministic method."""
        return 1 if s.deterministic else len(self.cfg.seeds)

    def run_unit(self, s: _Setting, task: Task, noise: float, split: str, image_idx: list[int]) -> list[dict]:
        cfg = self.cfg
        seeds = [int(cfg.seeds[0])] if s.deterministic else [int(x) for x in cfg.seeds]
        rows = []
        for seed in seeds:
            todo = []
            for i in image_idx:
                key = (s.method, s.params, task.name, _noise_str(noise), i, seed)
                if key in self.done:
                    rows.append(self.done[key])
                    self.skipped += 1
                    if self.bar is not None:
                        self.bar.update(1)
                else:
                    todo.append(i)
            for start in range(0, len(todo), cfg.batch_size):
                idx = todo[start : start + cfg.batch_size]
                y = self.measurement(task, noise, idx)
                t0 = time.perf_counter()
                x_hat, nfe, backward, status = self.reconstruct(s, task, noise, y, [_sample_seed(i, seed) for i in idx])
                seconds = (time.perf_counter() - t0) / len(idx)
                mets = self.metrics(x_hat, idx)
                if cfg.keep_images and x_hat is not None and split == "report":
                    kept = self.kept.setdefault((s.method, s.params, task.name, _noise_str(noise), seed), {})
                    for j, i in enumerate(idx):
                        kept[i] = ((x_hat[j] + 1) / 2).clamp(0, 1)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
                new = []
                for j, i in enumerate(idx):
                    row = {k: "" for k in CSV_FIELDS}
                    row.update(method=s.method, params=s.params, task=task.name, noise=_noise_str(noise), image=str(i),
                               seed=str(seed), split=split, status=status, seconds=f"{seconds:.6g}", nfe=str(nfe),
                               backward=str(backward), batch=str(len(idx)), prior=str(getattr(self.prior, "name", "")),
                               finished=stamp)
                    row.update(mets[j])
                    new.append(row)
                _append_rows(self.csv_path, new)
                for row in new:
                    self.done[_key(row)] = row
                rows.extend(new)
                self.computed += len(idx)
                if self.bar is not None:
                    self.bar.update(len(idx))
                    self.bar.set_postfix_str(f"{task.name} σ={_noise_str(noise)} {s.label}", refresh=False)
        return rows


# ---------------------------------------------------------------------------- summaries
def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def per_image_values(rows: list[dict], field_name: str) -> dict[int, float]:
    """``{image: value}`` of ``field_name``, each the mean over that image's seeds (missing/NaN values skipped)."""
    by_image: dict[int, list[float]] = {}
    for r in rows:
        v = _as_float(r.get(field_name))
        if math.isfinite(v):
            by_image.setdefault(int(r["image"]), []).append(v)
    return {i: float(np.mean(v)) for i, v in sorted(by_image.items())}


def _per_image(rows: list[dict], field_name: str) -> np.ndarray:
    """Values of ``field_name`` per image (sorted by image), each the mean over that image's seeds."""
    return np.array(list(per_image_values(rows, field_name).values()), dtype=float)


def _mean_se(values: np.ndarray) -> tuple[float, float, int]:
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), 0
    se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return float(values.mean()), se, n


def summarize(rows: list[dict], field_name: str) -> tuple[float, float, int]:
    """(mean, standard error, number of images) of a metric over images, seeds averaged per image first."""
    return _mean_se(_per_image(rows, field_name))


# ---------------------------------------------------------------------------- main entry
def run_evaluation(config: EvalConfig, *, prior=None, images=None, attrs: Optional[dict] = None,
                   classifiers=None) -> EvalResult:
    """Run (or resume) an evaluation and write ``results.csv``, ``summary.md``, plots, ``config.json``, ``command.txt``.

    Parameters
    ----------
    config : the settings (:class:`EvalConfig`; a dict of its fields is accepted too).
    prior : use this prior instead of ``load_prior(config.prior)`` (e.g. a tiny test network).
    images : use these images instead of the data set: (N, C, H, W) in image space [0, 1],
        numpy or torch; images ``0 .. n_select-1`` choose the parameters, the next
        ``n_images`` are reported.
    attrs : face attributes of ``images`` (``{"eyes": (N,), "mouth": (N,)}`` class indices)
        for the eye/mouth recovery scores.
    classifiers : the attribute classifiers (anything with
        ``predict(images, ["eyes", "mouth"]) -> {attr: (N,) ints}``); default
        :func:`helpers.face_measures.load_or_train_classifiers` when face measures are on.
    """
    cfg = EvalConfig(**config) if isinstance(config, dict) else dataclasses.replace(config)
    cfg.validate()
    if cfg.dataset is None and images is None:
        cfg.dataset = cfg.prior if cfg.prior in ("faces", "mnist") else None
    if prior is None:
        from ..priors import load_prior

        prior = load_prior(cfg.prior, device=cfg.device)
    n_total = cfg.n_select + cfg.n_images
    if images is None:
        images, attrs = _load_data(cfg, n_total, prior.image_shape)
    images = torch.as_tensor(np.asarray(images, dtype=np.float32)) if not torch.is_tensor(images) else images.detach().cpu().float()
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(prior.image_shape):
        raise ValueError(f"images have shape {tuple(images.shape)} but the prior makes {tuple(prior.image_shape)} images")
    if len(images) < n_total:
        raise ValueError(f"need {n_total} images (n_select={cfg.n_select} + n_images={cfg.n_images}), got {len(images)}")
    from ..data import check_range

    check_range(images, 0.0, 1.0, "images")
    face_on = cfg.face_measures
    if face_on is None:
        face_on = attrs is not None and "eyes" in attrs and "mouth" in attrs and (cfg.dataset == "faces" or classifiers is not None)
    if face_on:
        if attrs is None or "eyes" not in attrs or "mouth" not in attrs:
            raise ValueError("face measures need the images' attributes (attrs with 'eyes' and 'mouth')")
        if classifiers is None:
            from ..face_measures import load_or_train_classifiers

            classifiers = load_or_train_classifiers(progress=cfg.progress)
    else:
        classifiers = None

    out = Path(cfg.out_dir or Path("results") / str(cfg.prior).replace("/", "_"))
    out.mkdir(parents=True, exist_ok=True)
    with _FolderLock(out, cfg.command or f"run_evaluation(prior={cfg.prior!r})"):
        _check_fingerprint(out, cfg, prior, results_fingerprint(cfg, prior, images[:n_total], bool(face_on)))
        return _evaluate_into(out, cfg, prior, images, attrs, classifiers, n_total)


def _evaluate_into(out: Path, cfg: EvalConfig, prior, images, attrs, classifiers, n_total: int) -> EvalResult:
    """The body of :func:`run_evaluation`, with the folder locked and its fingerprint checked."""
    csv_path = out / "results.csv"
    runner = _Runner(cfg, prior, images, attrs, classifiers, csv_path)
    size = int(prior.image_shape[-1])
    tasks = [build_task(t, size) for t in cfg.tasks]
    select_idx = list(range(cfg.n_select))
    report_idx = list(range(cfg.n_select, n_total))

    # plan: which (setting, task, noise, split) units run (widened grids add units as they go)
    grid = {(t.name, m): _settings(m, t, cfg) for t in tasks for m in cfg.methods}
    total = 0
    for t in tasks:
        for m in cfg.methods:
            ss = grid[(t.name, m)]
            sel = len(ss) > 1
            report_settings = len(ss) if (m == "sdedit" and cfg.sdedit_sweep_on_report) or not sel else 1
            total += len(cfg.noise_levels) * runner.n_seeds(ss[0]) * (len(select_idx) * len(ss) * sel + len(report_idx) * report_settings)
    if cfg.progress:
        from tqdm.auto import tqdm

        runner.bar = tqdm(total=total, desc="evaluate", unit="img")

    searches: dict = {}
    try:
        for t in tasks:
            for noise in cfg.noise_levels:
                for m in cfg.methods:
                    search = _choose_setting(runner, t, noise, m, select_idx, report_idx)
                    searches[(t.name, _noise_str(noise), m)] = search
                    for s in search.report_settings(cfg.sdedit_sweep_on_report):
                        runner.run_unit(s, t, noise, "report", report_idx)
    finally:
        if runner.bar is not None:
            runner.bar.close()
    selected = {k: search.chosen.params for k, search in searches.items()}

    # this configuration's rows, read back from the file (the summary is computed from the CSV)
    all_rows = read_results(csv_path)
    wanted = {(s.method, s.params, task, ns) for (task, ns, _), search in searches.items() for s in search.settings}
    images_set = set(select_idx) | set(report_idx)
    cfg_rows = [
        r for r in all_rows
        if (r["method"], r["params"], r["task"], _noise_str(float(r["noise"]))) in wanted
        and int(r["image"]) in images_set and int(r["seed"]) in {int(x) for x in cfg.seeds}
    ]
    from .report import (  # the report reads this module's rows: imported here, not above
        make_plots,
        summary_markdown,
    )

    command = cfg.command or f"helpers.evaluate.run_evaluation({cfg!r})"
    reference = _reference_scores(images[report_idx], None if attrs is None else {k: np.asarray(v)[report_idx] for k, v in attrs.items()},
                                  classifiers)
    summary = summary_markdown(cfg, tasks, searches, cfg_rows, report_idx, select_idx, prior, command, reference)
    summary_path = out / "summary.md"
    summary_path.write_text(summary)
    (out / "command.txt").write_text(command + "\n")
    cfg_json = dataclasses.asdict(cfg)
    cfg_json["selected"] = {f"{k[0]}|sigma={k[1]}|{k[2]}": v for k, v in selected.items()}
    # how each choice was made: the values tried on the selection images and whether the optimum is interior
    cfg_json["selection"] = {f"{k[0]}|sigma={k[1]}|{k[2]}": search.as_json() for k, search in searches.items()
                             if search.choice is not None}
    cfg_json["report_images"] = report_idx
    cfg_json["select_images"] = select_idx
    cfg_json["tasks_detail"] = {t.name: t.description for t in tasks}
    cfg_json["prior_name"] = str(getattr(prior, "name", cfg.prior))
    # face measures of the clean reported images: [mean, standard error, n] (null without face measures)
    cfg_json["reference"] = None if reference is None else {k: [float(x) for x in v] for k, v in reference.items()}
    (out / "config.json").write_text(json.dumps(cfg_json, indent=2, default=str) + "\n")
    plots = make_plots(out, cfg, tasks, searches, cfg_rows, report_idx) if cfg.plots else []
    kept = {}
    if cfg.keep_images:
        for (task_name, ns, m), params in selected.items():
            got = runner.kept.get((m, params, task_name, ns, int(cfg.seeds[0])))
            if got:
                kept[(task_name, ns, m)] = dict(sorted(got.items()))
    return EvalResult(out, csv_path, summary_path, selected, cfg_rows, runner.computed, runner.skipped, plots, kept,
                      searches)


def _reference_scores(images: torch.Tensor, attrs, classifiers) -> Optional[dict]:
    """Face measures of the clean reported images (what a perfect reconstruction would score)."""
    if classifiers is None or attrs is None:
        return None
    from ..face_measures import eye_symmetry

    pred = classifiers.predict(images, ["eyes", "mouth"])
    return {
        "eyes_ok": _mean_se((pred["eyes"] == attrs["eyes"]).astype(float)),
        "mouth_ok": _mean_se((pred["mouth"] == attrs["mouth"]).astype(float)),
        "eye_symmetry": _mean_se(np.asarray(eye_symmetry(images), dtype=float)),
    }


