"""Speed benchmark of the samplers: overhead, DPS's cost per step, peak memory, batch scaling.

Run it from the repository root::

    python -m helpers.bench --prior faces --threads 1                 # a bundled prior
    python -m helpers.bench --random-unet faces32 --out bench.md       # a random network of the same shape
    python -m helpers.bench --gpu-celebahq                              # CUDA only: google/ddpm-celebahq-256's shape

It measures, in one run, ratios that do not depend much on the machine:

* **sampler overhead** -- a sampler's wall time / (NFE × the wall time of one bare network call
  on the same batch); for DPS the bare call is one forward plus one backward pass (the gradient
  with respect to the input). Everything a sampler does besides the network (update rules,
  noise, operator, bookkeeping) is in the excess over 1. Target: ≤ 1.05.
* **DPS cost per step** relative to an unconditional DDPM step, against its limit, the ratio
  (forward + backward) / forward of bare calls.
* **peak memory** of DPS against unconditional sampling at the same batch. On the CPU each is
  run in a fresh subprocess and measured as the rise of the resident set's high-water mark
  (``VmHWM`` after resetting it through ``/proc/self/clear_refs``; ``ru_maxrss`` where that is
  not possible) over the resident memory before sampling, with the network already loaded
  (``tracemalloc`` would not see torch's allocations); on CUDA ``torch.cuda.max_memory_allocated``
  minus the memory allocated before sampling.
* **batch scaling** -- image-steps per second (images per second of a one-step sampler) at
  batch 1, 4 and 16 for DDPM and DPS, and the resulting seconds per 1000-step image.

Times are the minimum over ``--repeats`` runs after a warm-up (the least disturbed run on a
busy machine). ``--gpu-celebahq`` builds a *randomly initialised* ``UNet2DModel`` with the
configuration of ``google/ddpm-celebahq-256`` (nothing is downloaded), times a few DPS steps
and extrapolates the seconds per 1000-step image, with the peak GPU memory.

The result is a Markdown section, printed and (``--out``) written to a file, ready for
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from . import samplers

__all__ = [
    "RANDOM_UNETS",
    "random_prior",
    "make_prior",
    "bare_call_seconds",
    "time_sampler",
    "overhead_ratio",
    "dps_step_cost",
    "peak_memory",
    "batch_scaling",
    "celebahq_gpu",
    "run_benchmark",
    "main",
]

#: Configurations of randomly initialised UNets (``--random-unet``): same shapes and cost as the real ones.
RANDOM_UNETS = {
    "tiny": dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                 down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                 norm_num_groups=4),
    # the bundled faces prior (helpers/pretrained/faces/unet/config.json), 2.7 M parameters
    "faces32": dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(32, 64, 128), layers_per_block=1,
                    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8,
                    attention_head_dim=8),
    # google/ddpm-celebahq-256 (114 M parameters); attention at 16×16
    "celebahq256": dict(sample_size=256, in_channels=3, out_channels=3,
                        block_out_channels=(128, 128, 256, 256, 512, 512), layers_per_block=2,
                        down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                        up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
                        attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1,
                        norm_eps=1e-6, norm_num_groups=32),
}

SAMPLERS = ("ddpm", "ddim", "sdedit", "score_ald", "dps")


# ---------------------------------------------------------------------------- priors
def random_prior(name: str, device="cpu", seed: int = 0):
    """A :class:`helpers.priors.Prior` around a randomly initialised UNet of :data:`RANDOM_UNETS` ``[name]``."""
    from diffusers import UNet2DModel

    from .priors import Prior
    from .schedule import NoiseSchedule

    if name not in RANDOM_UNETS:
        raise ValueError(f"unknown random UNet {name!r}; choose from {list(RANDOM_UNETS)}")
    torch.manual_seed(seed)
    unet = UNet2DModel(**RANDOM_UNETS[name]).to(device)
    return Prior(unet, NoiseSchedule.linear(), name=f"random {name}")


def make_prior(spec: dict, device=None):
    """Build the prior a spec names: ``{"prior": name_or_path}`` or ``{"random_unet": name}``."""
    if spec.get("random_unet"):
        return random_prior(spec["random_unet"], device=device or "cpu")
    from .priors import load_prior

    return load_prior(spec["prior"], device=device)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _interleaved(fns: dict, device, repeats: int) -> dict:
    """Minimum wall time of each function over ``repeats`` rounds, after one warm-up round.

    Each round runs every function once, in turn, so that a change of background load during the
    benchmark hits all of them alike (ratios of these minima are what the benchmark reports).
    """
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(max(1, repeats)):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _task(prior, batch: int):
    """A deblurring operator and a measurement for ``batch`` images of the prior's size."""
    from .evaluate import blur_setting
    from .operators import GaussianBlur

    k, s = blur_setting(int(prior.image_shape[-1]))
    op = GaussianBlur(k, s)
    x = torch.zeros(batch, *prior.image_shape, device=prior.device, dtype=prior.dtype)
    return op, op(x)


# ---------------------------------------------------------------------------- measurements
def _bare_fn(prior, batch: int, backward: bool, calls: int, t: int = 500) -> Callable[[], None]:
    """``calls`` consecutive bare network calls on one batch: forward under ``no_grad``, or forward +
    backward to the input (what DPS needs per step)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *prior.image_shape, generator=g).to(device=prior.device, dtype=prior.dtype)

    def forward():
        with torch.no_grad():
            for _ in range(calls):
                prior.eps(x, t)

    def forward_backward():
        for _ in range(calls):
            xx = x.detach().requires_grad_(True)
            with torch.enable_grad():
                torch.autograd.grad(prior.eps(xx, t).sum(), xx)

    return forward_backward if backward else forward


def bare_call_seconds(prior, batch: int = 1, backward: bool = False, repeats: int = 5, calls: int = 5) -> float:
    """Seconds of one bare network call on a batch (forward, or forward + backward to the input).

    Times ``calls`` consecutive calls as one run, like a sampler's run of as many steps, and takes
    the minimum over ``repeats`` runs.
    """
    return _interleaved({"bare": _bare_fn(prior, batch, backward, calls)}, prior.device, repeats)["bare"] / calls


def _sampler_fn(prior, sampler: str, batch: int, steps: int) -> Callable[[], samplers.SamplerResult]:
    if sampler == "ddpm":
        return lambda: samplers.sample_ddpm(prior, batch, num_steps=steps, seed=0, progress=False)
    if sampler == "ddim":
        return lambda: samplers.sample_ddim(prior, batch, num_steps=steps, seed=0, progress=False)
    op, y = _task(prior, batch)
    if sampler == "sdedit":
        return lambda: samplers.sdedit(prior, op, y, start_time=1.0, num_steps=steps, seed=0, progress=False)
    if sampler == "score_ald":
        return lambda: samplers.score_ald(prior, op, y, num_steps=steps, noise_std=0.05, seed=0, progress=False)
    if sampler == "dps":
        return lambda: samplers.dps(prior, op, y, num_steps=steps, seed=0, progress=False)
    raise ValueError(f"unknown sampler {sampler!r}; choose from {list(SAMPLERS)}")


def time_sampler(prior, sampler: str = "ddpm", batch: int = 1, steps: int = 5, repeats: int = 3) -> tuple[float, int]:
    """(seconds of a ``steps``-step run of ``sampler`` on ``batch`` images (min over repeats), its NFE)."""
    fn = _sampler_fn(prior, sampler, batch, steps)
    nfe = fn().nfe
    return _interleaved({"run": fn}, prior.device, repeats)["run"], nfe


def overhead_ratio(prior, sampler: str = "ddpm", batch: int = 1, steps: int = 3, repeats: int = 3) -> float:
    """Sampler wall time / (NFE × one bare network call on the same batch); DPS's bare call includes a backward.

    1.0 means the sampler spends all its time in the network. The sampler's run and a run of NFE
    bare calls are timed in alternation (minimum over ``repeats`` rounds).
    """
    fn = _sampler_fn(prior, sampler, batch, steps)
    nfe = fn().nfe
    bare = _bare_fn(prior, batch, backward=(sampler == "dps"), calls=nfe)
    best = _interleaved({"sampler": fn, "bare": bare}, prior.device, repeats)
    return best["sampler"] / best["bare"]


def dps_step_cost(prior, batch: int = 1, steps: int = 5, repeats: int = 3) -> dict:
    """DPS's time per step / an unconditional DDPM step, and its limit (forward + backward) / forward.

    Also returns the per-step and per-call seconds it measured (all timed in alternation).
    """
    dps_fn, unc_fn = _sampler_fn(prior, "dps", batch, steps), _sampler_fn(prior, "ddpm", batch, steps)
    n_dps, n_unc = dps_fn().nfe, unc_fn().nfe
    best = _interleaved({"dps": dps_fn, "uncond": unc_fn, "fwd": _bare_fn(prior, batch, False, steps),
                         "fwd_bwd": _bare_fn(prior, batch, True, steps)}, prior.device, repeats)
    return {
        "dps_step_s": best["dps"] / n_dps,
        "uncond_step_s": best["uncond"] / n_unc,
        "ratio": (best["dps"] / n_dps) / (best["uncond"] / n_unc),
        "limit": best["fwd_bwd"] / best["fwd"],
        "forward_s": best["fwd"] / steps,
        "forward_backward_s": best["fwd_bwd"] / steps,
    }


def _rss_kib(field_name: str) -> Optional[int]:
    try:
        m = re.search(rf"{field_name}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _memory_worker(spec: dict) -> dict:
    """Runs in a fresh process: peak extra memory of one sampler run, network already loaded."""
    import gc

    torch.set_num_threads(int(spec.get("threads") or 1))
    prior = make_prior(spec, device=spec.get("device"))
    fn = _sampler_fn(prior, spec["sampler"], int(spec["batch"]), int(spec["steps"]))
    warm = _sampler_fn(prior, spec["sampler"], int(spec["batch"]), 1)
    warm()  # lazy initialisations, allocator warm-up
    gc.collect()
    if prior.device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated() - base, "method": "torch.cuda.max_memory_allocated"}
    base = _rss_kib("VmRSS")
    if base is not None and _reset_hwm():
        fn()
        return {"peak_bytes": (_rss_kib("VmHWM") - base) * 1024, "method": "VmHWM after clear_refs, minus VmRSS"}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return {"peak_bytes": (after - before) * scale, "method": "ru_maxrss delta (a lower bound)"}


def peak_memory(spec: dict, sampler: str, batch: int, steps: int = 3, threads: int = 1, device=None) -> dict:
    """Peak extra memory (bytes) of a ``steps``-step ``sampler`` run on ``batch`` images, in a fresh subprocess.

    ``spec`` names the prior as for :func:`make_prior`. Returns ``{"peak_bytes", "method"}``.
    """
    job = dict(spec, sampler=sampler, batch=batch, steps=steps, threads=threads, device=device)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "helpers.bench", "--memory-worker", json.dumps(job)],
                          capture_output=True, text=True, env=env, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def batch_scaling(prior, batches=(1, 4, 16), steps: int = 3, repeats: int = 2, sampler_names=("ddpm", "dps")) -> list:
    """Per batch size and sampler: seconds per step, image-steps per second, seconds per 1000-step image."""
    out = []
    for b in batches:
        row = {"batch": b}
        for name in sampler_names:
            seconds, nfe = time_sampler(prior, name, b, steps, repeats)
            per_step = seconds / nfe
            row[f"{name}_step_s"] = per_step
            row[f"{name}_image_steps_per_s"] = b / per_step
            row[f"{name}_s_per_1000_step_image"] = 1000 * per_step / b
        out.append(row)
    return out


def celebahq_gpu(steps: int = 5, batch: int = 1, repeats: int = 2, device: str = "cuda") -> dict:
    """DPS and DDPM on a random ``google/ddpm-celebahq-256``-shaped UNet on a CUDA GPU.

    Returns seconds per step, extrapolated seconds per 1000-step image, and peak GPU memory
    (``torch.cuda.max_memory_allocated`` during a run, beyond the memory held before it).
    """
    if not torch.cuda.is_available():
        raise RuntimeError("--gpu-celebahq needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured")
    prior = random_prior("celebahq256", device=device)
    out = {"params_M": prior.num_parameters / 1e6, "batch": batch, "steps_timed": steps,
           "gpu": torch.cuda.get_device_name(torch.device(device))}
    for name in ("ddpm", "dps"):
        fn = _sampler_fn(prior, name, batch, steps)
        fn()  # warm-up (cuDNN autotuning, allocator)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        seconds = _interleaved({"run": fn}, device, repeats)["run"]
        peak = torch.cuda.max_memory_allocated() - base
        out[f"{name}_step_s"] = seconds / steps
        out[f"{name}_s_per_1000_step_image"] = 1000 * seconds / steps / batch
        out[f"{name}_peak_bytes"] = peak
    out["weights_bytes"] = sum(p.numel() * p.element_size() for p in prior.unet.parameters())
    return out


# ---------------------------------------------------------------------------- report
def _mb(b: float) -> str:
    return f"{b / 2**20:.1f} MiB"


def run_benchmark(spec: dict, batch: int = 8, steps: int = 5, repeats: int = 3, batches=(1, 4, 16),
                  threads: Optional[int] = None, device=None, memory: bool = True) -> tuple[str, dict]:
    """All measurements for one prior; returns (Markdown, raw numbers)."""
    prior = make_prior(spec, device=device)
    name = spec.get("prior") or f"random UNet {spec['random_unet']}"
    res: dict = {"prior": name, "batch": batch, "steps": steps}
    res["overhead"] = {s: overhead_ratio(prior, s, batch, steps, repeats) for s in SAMPLERS}
    res["dps_cost"] = dps_step_cost(prior, batch, steps, repeats)
    fwd, fwd_bwd = res["dps_cost"]["forward_s"], res["dps_cost"]["forward_backward_s"]
    if memory:
        dev = str(prior.device)
        res["memory"] = {s: peak_memory(spec, s, batch, steps=min(steps, 3), threads=threads or 1, device=dev)
                         for s in ("ddpm", "dps")}
    res["scaling"] = batch_scaling(prior, batches, steps=max(2, min(steps, 3)), repeats=max(1, repeats - 1))

    n_thr = torch.get_num_threads()
    lines = [
        f"## Sampler benchmark: {name}",
        "",
        f"{prior.num_parameters / 1e6:.1f} M parameters, images {'×'.join(map(str, prior.image_shape))}, "
        f"{prior.device}{'' if prior.device.type == 'cuda' else f' ({platform.processor() or platform.machine()}, {n_thr} thread(s))'}, "
        f"torch {torch.__version__}; batch {batch}, {steps} steps per timed run, minimum of {repeats} runs. "
        f"Command: `python -m helpers.bench {' '.join(spec.get('argv', []))}`",
        "",
        "| quantity | value | target / limit |",
        "|---|---:|---|",
        f"| one forward pass, batch {batch} | {fwd * 1e3:.1f} ms | |",
        f"| one forward + backward (gradient to the input), batch {batch} | {fwd_bwd * 1e3:.1f} ms | |",
    ]
    names = {"ddpm": "DDPM", "ddim": "DDIM", "sdedit": "SDEdit (t0 = 1)", "score_ald": "ScoreALD", "dps": "DPS"}
    for s in SAMPLERS:
        unit = "NFE × (forward + backward)" if s == "dps" else "NFE × forward"
        lines.append(f"| overhead {names[s]}: wall time / ({unit}) | {res['overhead'][s]:.3f} | ≤ 1.05 |")
    c = res["dps_cost"]
    lines.append(f"| DPS step / unconditional step ({c['dps_step_s'] * 1e3:.1f} / {c['uncond_step_s'] * 1e3:.1f} ms) "
                 f"| {c['ratio']:.2f} | limit (forward + backward) / forward = {c['limit']:.2f} |")
    if memory:
        m_d, m_u = res["memory"]["dps"]["peak_bytes"], res["memory"]["ddpm"]["peak_bytes"]
        ratio = m_d / m_u if m_u > 0 else float("inf")
        lines.append(f"| peak memory DPS / unconditional, batch {batch} ({_mb(m_d)} / {_mb(m_u)}) | {ratio:.1f} | "
                     f"{res['memory']['dps']['method']} |")
    lines += ["", "Batch scaling (image-steps per second = images per second of a one-step sampler):", "",
              "| batch | DDPM image-steps/s | DPS image-steps/s | DDPM s per 1000-step image | DPS s per 1000-step image |",
              "|---:|---:|---:|---:|---:|"]
    for r in res["scaling"]:
        lines.append(f"| {r['batch']} | {r['ddpm_image_steps_per_s']:.1f} | {r['dps_image_steps_per_s']:.1f} | "
                     f"{r['ddpm_s_per_1000_step_image']:.1f} | {r['dps_s_per_1000_step_image']:.1f} |")
    lines.append("")
    return "\n".join(lines), res


def celebahq_markdown(res: dict) -> str:
    return "\n".join([
        "## DPS on a google/ddpm-celebahq-256-shaped UNet (random weights)",
        "",
        f"{res['params_M']:.1f} M parameters ({_mb(res['weights_bytes'])} of fp32 weights), {res['gpu']}, "
        f"batch {res['batch']}, {res['steps_timed']} steps timed, torch {torch.__version__}.",
        "",
        "| sampler | s per step | s per 1000-step image | peak GPU memory beyond the weights |",
        "|---|---:|---:|---:|",
        f"| DDPM | {res['ddpm_step_s']:.4f} | {res['ddpm_s_per_1000_step_image']:.1f} | {_mb(res['ddpm_peak_bytes'])} |",
        f"| DPS | {res['dps_step_s']:.4f} | {res['dps_s_per_1000_step_image']:.1f} | {_mb(res['dps_peak_bytes'])} |",
        "",
        "DPS paper: about 95 s per 1000-step 256×256 image on an RTX 2080 Ti.",
        "",
    ])


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prior", default=None, help="a prior for load_prior (default: faces)")
    src.add_argument("--random-unet", choices=list(RANDOM_UNETS), help="a randomly initialised UNet of this shape")
    p.add_argument("--gpu-celebahq", action="store_true", help="time DPS on a celebahq-256-shaped UNet (CUDA only)")
    p.add_argument("--batch", type=int, default=None, help="batch for overhead, DPS cost and memory (default 8; 1 for --gpu-celebahq)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="batch sizes for the scaling table")
    p.add_argument("--steps", type=int, default=5, help="sampler steps per timed run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 on a busy machine)")
    p.add_argument("--device", default=None)
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--out", default=None, help="also write the Markdown to this file")
    p.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_worker:
        print(json.dumps(_memory_worker(json.loads(args.memory_worker))))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    argv_list = sys.argv[1:] if argv is None else list(argv)
    try:
        if args.gpu_celebahq:
            md = celebahq_markdown(celebahq_gpu(steps=args.steps, batch=args.batch or 1,
                                                repeats=max(1, args.repeats - 1)))
        else:
            spec = {"random_unet": args.random_unet} if args.random_unet else {"prior": args.prior or "faces"}
            spec["argv"] = argv_list
            md, _ = run_benchmark(spec, batch=args.batch or 8, steps=args.steps, repeats=args.repeats,
                                  batches=tuple(args.batches), threads=args.threads, device=args.device,
                                  memory=not args.no_memory)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(md)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
