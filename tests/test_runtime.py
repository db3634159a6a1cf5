"""helpers.runtime: PyTorch threads follow the idle cores, measured from /proc/stat."""

from __future__ import annotations

import pytest
import torch

from helpers import runtime as R


def _stat(tmp_path, user, idle, name="stat"):
    p = tmp_path / name
    p.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0\n")
    return str(p)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_idle_cores_from_two_readings(tmp_path, monkeypatch):
    """One of two cores busy in the window: 1 idle core."""
    readings = iter([(0.0, 0.0), (100.0, 200.0)])  # (idle, total) before and after
    monkeypatch.setattr(R, "_cpu_times", lambda path: next(readings))
    monkeypatch.setattr(R.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(R, "available_cores", lambda: 2)
    assert R.idle_cores(window=0) == pytest.approx(1.0)


def test_cpu_times_reads_the_first_line(tmp_path):
    assert R._cpu_times(_stat(tmp_path, user=30, idle=70)) == (70.0, 100.0)


def test_unreadable_stat_gives_none(tmp_path):
    assert R.idle_cores(window=0, path=str(tmp_path / "missing")) is None


@pytest.mark.parametrize("idle, cores, expected", [(1.9, 2, 2), (1.6, 2, 2), (1.4, 2, 1), (0.1, 2, 1), (7.8, 4, 4)])
def test_threads_follow_the_idle_cores(monkeypatch, restore_threads, idle, cores, expected, capsys):
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    monkeypatch.setattr(R, "idle_cores", lambda window: idle)
    monkeypatch.setattr(R, "available_cores", lambda: cores)
    assert R.use_idle_cores() == expected
    assert torch.get_num_threads() == expected
    assert f"{expected} CPU thread" in capsys.readouterr().out


def test_environment_overrides(monkeypatch, restore_threads):
    monkeypatch.setenv("COURSE_THREADS", "1")
    monkeypatch.setattr(R, "idle_cores", lambda window: pytest.fail("not measured when COURSE_THREADS is set"))
    assert R.use_idle_cores(verbose=False) == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("COURSE_THREADS", "zero")
    with pytest.raises((TypeError, ValueError), match="COURSE_THREADS"):
        R.use_idle_cores(verbose=False)


def test_without_proc_stat_all_cores(monkeypatch, restore_threads):
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    monkeypatch.setattr(R, "idle_cores", lambda window: None)
    monkeypatch.setattr(R, "available_cores", lambda: 3)
    assert R.use_idle_cores(verbose=False) == 3


def test_real_measurement_is_within_the_cores():
    idle = R.idle_cores(window=0.2)
    if idle is not None:  # Linux
        assert 0 <= idle <= R.available_cores() + 1e-9


def test_choose_prior_follows_the_hardware_and_the_standin(tmp_path, monkeypatch):
    monkeypatch.delenv(R.STANDIN_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert R.choose_prior() == ("cpu", "faces", False)
    assert R.choose_prior("mnist") == ("cpu", "mnist", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert R.choose_prior() == ("cuda", R.GPU_PRIOR, True)
    monkeypatch.setenv(R.STANDIN_ENV, str(tmp_path))
    assert R.choose_prior() == ("cuda", str(tmp_path), True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert R.choose_prior() == ("cpu", str(tmp_path), True)
    monkeypatch.setenv(R.STANDIN_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="helpers.standin"):
        R.choose_prior()


def test_text_claims_are_errors_when_strict_and_notes_otherwise(capsys):
    strict = R.TextClaims(strict=True)
    assert strict.check(1 < 2, "fine")
    with pytest.raises(AssertionError, match="the text says so"):
        strict.check(2 < 1, "the text says so")
    lenient = R.TextClaims(strict=False)
    assert not lenient.check(2 < 1, "the text says so")
    assert lenient.failed == ["the text says so"]
    assert "does not hold (the text says so)" in capsys.readouterr().out
