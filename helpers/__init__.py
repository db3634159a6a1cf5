"""Helpers for the course *Imaging with Diffusion Model Prior*.

Every algorithm of the course lives here, tested; the chapter notebooks call it
and explain it. One idea per module:

- :mod:`helpers.schedule`  -- the DDPM noise schedule and the DDPM/DDIM update rules
- :mod:`helpers.priors`    -- a network plus its schedule (``load_prior``), and an exact Gaussian prior
- :mod:`helpers.operators` -- forward models A, their adjoints, and measurement noise
- :mod:`helpers.samplers`  -- DDPM, DDIM, SDEdit, ScoreALD and DPS sampling loops
- :mod:`helpers.metrics`   -- PSNR, SSIM and LPIPS (with an offline backbone path)
- :mod:`helpers.data`      -- images: faces, digits, photos; [0, 1] <-> [-1, 1] conversions
- :mod:`helpers.plotting`  -- image grids and trajectory strips
- :mod:`helpers.face_measures` -- eye/mouth-type classifiers and an eye-symmetry score for cartoon faces
- :mod:`helpers.exercises` -- checkers for the chapters' exercises, one module per chapter
- :mod:`helpers.train`     -- ``python -m helpers.train``: trains the bundled priors
- :mod:`helpers.evaluate_prior`, :mod:`helpers.model_card` -- quality of a bundled prior, its model card
- :mod:`helpers.evaluate`, :mod:`helpers.bench` -- reconstruction quality harness, speed benchmark
- :mod:`helpers.widgets`, :mod:`helpers.static_explorer` -- live explorers (kernel) and their static twins (rendered page)
- :mod:`helpers.runtime`   -- how many CPU threads PyTorch uses (the idle cores)
- :mod:`helpers.standin`, :mod:`helpers.gpu_budget`, :mod:`helpers.aligned_faces` -- the GPU path: a random-weight
  stand-in of the real face model, network evaluations and their T4 time, part boxes and measures of aligned faces

Value ranges: *model space* is [-1, 1] (what the networks see); *image space* is
[0, 1] (what metrics and plots take). Tensors are ``(B, C, H, W)``.
"""

__version__ = "0.1.0"
