"""The evaluation of the course's methods, one idea per module.

- :mod:`helpers.evaluation.tasks`     -- the inverse problems (``build_task``, per-resolution settings) and
  their classical baselines
- :mod:`helpers.evaluation.selection` -- choosing a parameter on the selection images: the best value of
  a grid, the grid widened past an edge that holds the best value
- :mod:`helpers.evaluation.harness`   -- ``EvalConfig``, ``run_evaluation``, the results file (keys, resume)
- :mod:`helpers.evaluation.report`    -- ``summary.md`` and the figures

The command line, and the module to import from, is :mod:`helpers.evaluate`
(``python -m helpers.evaluate``), which re-exports the public names.
"""
