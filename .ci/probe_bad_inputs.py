"""Probe the public API with the bad inputs of the reliability issue; print a markdown row per case: case | what happens.

Run by hand (not part of CI; every case is also a unit test in tests/test_reliability.py and friends):

    python .ci/probe_bad_inputs.py

It needs the shipped faces prior and the committed results/ folders; it writes only to a temporary folder.
"""
import io, json, os, shutil, subprocess, sys, tempfile, warnings, contextlib
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
torch.set_num_threads(1)
from helpers import samplers as S, operators as O, data as D, priors as P, widgets as W
from helpers.evaluation.tasks import build_task

prior = P.load_prior("faces")
x = D.to_model_space(torch.as_tensor(D.face_dataset("test", size=32, n=1, progress=False)[0][:1]))
blur = build_task("deblur", 32).operator
y = blur.measure(x, noise_std=0.05, seed=0)
rows = []

def case(label, fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            out = fn()
            res = "returns"
            if hasattr(out, "sample"):
                res += f" (PSNR vs truth {float(10*torch.log10(4/((out.sample-x)**2).mean())):.1f} dB)"
        except BaseException as e:  # noqa
            msg = str(e).replace("\n", " ")
            res = f"{type(e).__name__}: {msg[:150]}"
    ws = [f"{ww.category.__name__}: {str(ww.message)[:110]}" for ww in w if issubclass(ww.category, (O.ImageSpaceWarning, UserWarning))]
    if ws and res.startswith("returns"):
        res += " + " + ws[0]
    rows.append((label, res))
    print(f"| {label} | {res} |", flush=True)

box = build_task("box", 32).operator
yb = box.measure(x, noise_std=0.05, seed=0)
case("dps ζ′ = 1e3", lambda: S.dps(prior, box, yb, num_steps=100, step_size=1e3, progress=False))
case("dps ζ′ = 1e6", lambda: S.dps(prior, box, yb, num_steps=100, step_size=1e6, progress=False))
case("score_ald poster rule, λ = 1", lambda: S.score_ald(prior, box, yb, num_steps=100, step_size=1.0, step_rule="poster", likelihood_weight="orthonormal", progress=False))
ex = W.step_size_explorer(prior, (x[0]+1)/2, method="dps", operator=box, noise_std=0.05, num_steps=100, lpips=False)
def widget_diverge():
    ex.update(step_size=1e3)
    return f"shows the message in place of the image, PSNR {ex.psnr}: {ex.message[:90]}"
case("step-size widget at ζ′ = 1e3", lambda: (_ for _ in ()).throw(RuntimeError(widget_diverge())))
for name, yy in [("y in [0, 1]", (y + 1) / 2), ("y in 0..255", (y + 1) * 127.5), ("y uint8", ((y + 1) * 127.5).clamp(0, 255).to(torch.uint8))]:
    for m, kw in [("dps", {}), ("sdedit", {}), ("score_ald", dict(step_size=0.01))]:
        case(f"{m}({name})", lambda m=m, yy=yy, kw=kw: getattr(S, m)(prior, blur, yy, num_steps=10, progress=False, **kw))
case("sdedit(start_image in 0..255)", lambda: S.sdedit(prior, blur, y, start_image=(x + 1) * 127.5, num_steps=10, progress=False))
case("sdedit(start_image = NaN)", lambda: S.sdedit(prior, blur, y, start_image=torch.full_like(x, float('nan')), num_steps=10, progress=False))
case("sample_ddim(eta = nan)", lambda: S.sample_ddim(prior, 1, num_steps=5, eta=float('nan'), progress=False))
case("GaussianBlur(9, 1).measure(int64 tensor)", lambda: O.GaussianBlur(9, 1).measure(torch.ones(1, 3, 32, 32, dtype=torch.long)))
case("Denoising().measure(int64 tensor, 0.05)", lambda: O.Denoising().measure(torch.zeros(1, 3, 32, 32, dtype=torch.long), 0.05))
case("GaussianNoise(0.05)(int64 tensor)", lambda: O.GaussianNoise(0.05)(torch.zeros(1, 3, 8, 8, dtype=torch.long)))
from helpers._util import as_int, as_float
case("dps(num_steps=np.int64(5), step_size=np.float32(1))", lambda: S.dps(prior, box, yb, num_steps=np.int64(5), step_size=np.float32(1), progress=False))
case("sample_ddim(num_steps=torch.tensor(5))", lambda: S.sample_ddim(prior, 1, num_steps=torch.tensor(5), progress=False))
case("dps on an empty batch", lambda: S.dps(prior, box, yb[:0], num_steps=5, progress=False))
case("BoxInpainting(32.0, 16)", lambda: O.BoxInpainting(32.0, 16))
case("sample_ddpm(seed=2**64)", lambda: S.sample_ddpm(prior, 1, num_steps=5, seed=2**64, progress=False))
case("sdedit widget update(t0=nan)", lambda: W.sdedit_explorer(prior, (x[0]+1)/2, num_steps=10, lpips=False).update(t0=float('nan')))
case("step_size_explorer(step_range=(0, 1))", lambda: W.step_size_explorer(prior, (x[0]+1)/2, method="dps", operator=box, step_range=(0, 1), lpips=False))
case("sdedit widget update(operator='nope')", lambda: W.sdedit_explorer(prior, (x[0]+1)/2, num_steps=10, lpips=False).update(operator="nope"))
tmp = Path(tempfile.mkdtemp())
shutil.copytree("helpers/pretrained/faces", tmp / "faces")
(tmp / "faces/scheduler/scheduler_config.json").write_text("{not json")
case("load_prior with scheduler_config.json not JSON", lambda: P.load_prior(str(tmp / "faces")))
shutil.rmtree(tmp / "faces"); shutil.copytree("helpers/pretrained/faces", tmp / "faces")
w = next((tmp / "faces").rglob("*.safetensors")); b = bytearray(w.read_bytes()); b[-10] ^= 1; w.write_bytes(bytes(b))
case("load_prior with flipped weight byte (weights.sha256)", lambda: P.load_prior(str(tmp / "faces")))
def cli(args):
    r = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [l for l in (r.stderr + r.stdout).strip().splitlines() if l.strip()]
    return f"exit {r.returncode}: {(lines[-1] if lines else '')[:170]}"
def cli_case(label, args):
    rows.append((label, cli(args))); print(f"| {label} | {rows[-1][1]} |", flush=True)
cli_case("train --export-only, no checkpoint", ["helpers.train", "--dataset", "mnist", "--out", str(tmp / "o1"), "--export-only", "--checkpoint-dir", str(tmp / "nock")])
cli_case("train --steps 0", ["helpers.train", "--dataset", "mnist", "--out", str(tmp / "o2"), "--steps", "0", "--checkpoint-dir", str(tmp / "ck2")])
cli_case("train --max-minutes 0", ["helpers.train", "--dataset", "mnist", "--out", str(tmp / "o3"), "--max-minutes", "0", "--checkpoint-dir", str(tmp / "ck3")])
cli_case("train --out helpers/pretrained/mnist (no --force)", ["helpers.train", "--dataset", "mnist", "--out", "helpers/pretrained/mnist", "--steps", "1", "--checkpoint-dir", str(tmp / "ck4")])
cli_case("train --batch-size -1", ["helpers.train", "--dataset", "mnist", "--out", str(tmp / "o5"), "--batch-size", "-1", "--steps", "1", "--checkpoint-dir", str(tmp / "ck5")])
cli_case("findings on results/mnist", ["helpers.findings", "results/mnist"])
cli_case("findings --noise 0.3 on results/faces", ["helpers.findings", "results/faces", "--noise", "0.3"])
cli_case("evaluate --prior mnist into results/faces' copy", ["helpers.evaluate", "--prior", "mnist", "--tasks", "deblur", "--n-images", "2", "--n-select", "2", "--allow-small-selection", "--steps", "2", "--out", str(shutil.copytree("results/faces", tmp / "rf"))])
