"""Shared assertions for the tests of the exercise checkers (``helpers.exercises``)."""

from helpers.exercises import CheckResult


def fails_with(result, capsys, *words):
    """The checker said "Not yet" (printed and returned a falsy CheckResult) and its hint holds ``words``."""
    out = capsys.readouterr().out
    assert isinstance(result, CheckResult)
    assert not result and result == False  # noqa: E712 - the bool-like contract
    assert out.startswith("Not yet: ") and result.message in out
    for w in words:
        assert w in out, (w, out)


def passes(result, capsys):
    """The checker said "Correct" (printed and returned a truthy CheckResult)."""
    out = capsys.readouterr().out
    assert result and result == True  # noqa: E712
    assert out.startswith("Correct: ")
