"""Average the weights of several exports of one training run into one prior (a "model soup" along the run).

An EMA with decay 0.999 averages the last ~1000 optimiser steps. Averaging the EMA weights exported at
several points of the same run (say at steps 4,681, 8,461 and 10,000) is a longer average that costs no
training; on the MNIST prior it gave more clean digits from the deterministic DDIM sampler than any
single export (see the model card). Every export must have the same network (``unet/config.json``).

    python -m helpers.average_priors --out helpers/pretrained/mnist --force RUN_AT_75MIN RUN_AT_135MIN RUN_AT_160MIN

The result is an ordinary prior folder (``helpers.train.export_prior``): the last source's training record
and loss log, plus ``averaged_from`` (each source's path, steps and weights hash) and ``average_command``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from .priors import WEIGHTS_FILE

WEIGHTS = Path(WEIGHTS_FILE)


def _read_source(path: Path) -> dict:
    for rel in (WEIGHTS, Path("unet") / "config.json", Path("training_info.json")):
        if not (path / rel).exists():
            raise FileNotFoundError(f"sources: {path} is not an exported prior (no {rel}); give folders written by "
                                    "python -m helpers.train (--out) or helpers.train.export_prior")
    return {"config": json.loads((path / "unet" / "config.json").read_text()),
            "info": json.loads((path / "training_info.json").read_text())}


def average_state_dicts(state_dicts: Sequence[dict]) -> dict:
    """The element-wise mean of ``state_dicts`` (same keys and shapes), accumulated in float64, in each tensor's dtype."""
    first = state_dicts[0]
    for i, sd in enumerate(state_dicts[1:], 2):
        if sd.keys() != first.keys():
            raise ValueError(f"sources: source {i} has other weights than source 1 ({sorted(sd.keys() ^ first.keys())[:3]} ...)")
        bad = [k for k in first if sd[k].shape != first[k].shape]
        if bad:
            raise ValueError(f"sources: source {i} has other shapes than source 1 at {bad[:3]}")
    return {k: (sum(sd[k].double() for sd in state_dicts) / len(state_dicts)).to(first[k].dtype) for k in first}


def average_priors(sources: Sequence[str], out: str, force: bool = False, command: Optional[str] = None) -> Path:
    """Write the mean of the exported priors ``sources`` (two or more folders, same network) to ``out``.

    ``force`` allows ``out`` inside ``helpers/pretrained/`` (replacing a shipped prior). Returns ``out``.
    """
    from diffusers import UNet2DModel
    from safetensors.torch import load_file

    from ._util import file_sha256
    from .train import export_prior, read_log_csv, refuse_shipped_out

    paths = [Path(s) for s in sources]
    if len(paths) < 2:
        raise ValueError(f"sources: got {len(paths)} folder(s); averaging needs two or more exports of one run")
    refuse_shipped_out(out, force, "--force (force=True)")
    read = [_read_source(p) for p in paths]
    for p, r in zip(paths[1:], read[1:]):
        if r["config"] != read[0]["config"]:
            diff = sorted(k for k in set(r["config"]) | set(read[0]["config"])
                          if r["config"].get(k) != read[0]["config"].get(k) and not k.startswith("_"))
            if diff:
                raise ValueError(f"sources: {p} has another network than {paths[0]} (unet/config.json differs in "
                                 f"{diff}); average exports of one run only")
    avg = average_state_dicts([load_file(str(p / WEIGHTS)) for p in paths])
    model = UNet2DModel.from_config(read[-1]["config"])
    model.load_state_dict(avg)
    info = dict(read[-1]["info"])
    info["averaged_from"] = [{"path": str(p), "steps_in_run": r["info"].get("steps"),
                              "weights_sha256": file_sha256(p / WEIGHTS)} for p, r in zip(paths, read)]
    info["average_command"] = command
    info["weights"] = f"mean of the EMA weights of {len(paths)} exports (averaged_from)"
    return export_prior(model, Path(out), read_log_csv(paths[-1] / "training_log.csv"), info)


def main(argv: Optional[Sequence[str]] = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m helpers.average_priors", description=__doc__.split("\n")[0])
    p.add_argument("sources", nargs="+", help="exported prior folders of one run, oldest first")
    p.add_argument("--out", required=True, help="folder for the averaged prior")
    p.add_argument("--force", action="store_true", help="allow --out inside helpers/pretrained/ (replace a shipped prior)")
    args = p.parse_args(argv)
    command = "python -m helpers.average_priors " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        out = average_priors(args.sources, args.out, force=args.force, command=command)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"python -m helpers.average_priors: error: {err}") from None
    print(f"[average_priors] wrote the mean of {len(args.sources)} exports to {out}")
    return out


if __name__ == "__main__":
    main()
