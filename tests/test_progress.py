"""ProgressDisplay: spinner on a terminal, plain lines elsewhere or under CI, silence if quiet."""

from __future__ import annotations

import io
import time

import pytest

from skullseg.progress import ProgressDisplay, is_interactive


class FakeTTY(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = ProgressDisplay(stream=out)
    assert not progress.interactive
    with progress.stage("bias correction"):
        pass
    with progress.stage("labels"):
        pass
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[bias correction] done in ") and lines[0].endswith(" s")
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert list(progress.timings) == ["bias correction", "labels"]


def test_spinner_on_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    out = FakeTTY()
    with ProgressDisplay(stream=out, interval_s=0.01) as progress:
        assert progress.interactive
        with progress.stage("skull surfaces"):
            time.sleep(0.08)
            progress.message("a note")
    text = out.getvalue()
    assert "\r" in text and "skull surfaces  0." in text  # spinner frames with elapsed time
    assert "✓ skull surfaces: done in 0." in text and "a note\n" in text
    assert progress._thread is None  # the spinner thread has stopped


@pytest.mark.parametrize("value", ["true", "1"])
def test_ci_means_plain_lines(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    out = FakeTTY()
    assert not is_interactive(out)
    with ProgressDisplay(stream=out).stage("conform"):
        pass
    assert out.getvalue().startswith("[conform] done in ")


def test_quiet_writes_nothing_but_times():
    out = FakeTTY()
    progress = ProgressDisplay(stream=out, quiet=True, interactive=True)
    with progress.stage("conform"):
        pass
    progress.message("hidden")
    assert out.getvalue() == "" and "conform" in progress.timings


@pytest.mark.parametrize("interactive", [False, True])
def test_failure_is_reported_and_reraised(interactive):
    out = FakeTTY() if interactive else io.StringIO()
    progress = ProgressDisplay(stream=out, interactive=interactive, interval_s=0.01)
    with pytest.raises(RuntimeError), progress.stage("outer"):
        with progress.stage("inner"):
            pass
        raise RuntimeError("boom")
    text = out.getvalue()
    assert "inner" in text and "failed after" in text and "outer" not in progress.timings
    assert progress._thread is None
