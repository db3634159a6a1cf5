"""Exercise checkers, one module per chapter, named after the chapter's notebook.

==================================  =============================================
module                              chapter
==================================  =============================================
:mod:`helpers.exercises.introduction`      ``book/introduction.ipynb``
:mod:`helpers.exercises.ddpm_basics`       ``book/ddpm_basics.ipynb``
:mod:`helpers.exercises.unconditional`     ``book/unconditional.ipynb``
:mod:`helpers.exercises.inverse_problems`  ``book/inverse_problems.ipynb``
:mod:`helpers.exercises.sdedit`            ``book/sdedit.ipynb``
:mod:`helpers.exercises.score_ald`         ``book/score_ald.ipynb``
:mod:`helpers.exercises.dps`               ``book/dps.ipynb``
:mod:`helpers.exercises.comparison`        ``book/comparison.ipynb``
==================================  =============================================

What they share (:class:`CheckResult`, the best-of-a-sweep checker) lives in
:mod:`helpers.exercises._checks`.
"""

from ._checks import CheckResult, check_best_of_sweep

__all__ = ["CheckResult", "check_best_of_sweep"]
