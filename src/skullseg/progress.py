"""Console progress of the pipeline's stages, on stderr.

On a terminal each running stage shows a spinner and its elapsed time, replaced by a
"done" line when it ends. Elsewhere (a pipe, a log file, or when the environment variable
``CI`` is set) only plain lines are written, one per finished stage::

    [bias correction] done in 5.2 s

With ``quiet=True`` nothing is written; the timings are recorded in every mode.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> progress = ProgressDisplay(stream=out)
>>> with progress.stage("conform"):
...     pass
>>> out.getvalue().startswith("[conform] done in")
True
>>> list(progress.timings)
['conform']
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["ProgressDisplay", "is_interactive"]

_CLEAR = "\r\x1b[2K"


def is_interactive(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal and ``CI`` is unset (or ``0``/``false``)."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressDisplay:
    """Show pipeline stages on the console: a spinner on a terminal, plain lines elsewhere.

    Parameters
    ----------
    quiet : bool
        Write nothing (timings are still recorded).
    stream : file-like, optional
        Where to write; standard error by default.
    interactive : bool, optional
        Force the spinner on or off; by default on for a terminal unless ``CI`` is set.
    interval_s : float
        Spinner refresh period.

    Attributes
    ----------
    timings : dict of str to float
        Seconds taken by each finished stage, in the order they finished.
    """

    def __init__(
        self,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        interval_s: float = 0.1,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.interactive = is_interactive(self.stream) if interactive is None else interactive
        self.interval_s = interval_s
        self.timings: dict[str, float] = {}
        self._stack: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        unicode = "utf" in (getattr(self.stream, "encoding", None) or "").lower()
        self._frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏" if unicode else "|/-\\"
        self._ok, self._fail = ("✓", "✗") if unicode else ("ok", "!!")

    # -- public API ---------------------------------------------------------------------
    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block as stage ``name`` and show it while it runs.

        Stages may nest; an exception is reported as a failure of the stage and re-raised.
        """
        t0 = time.perf_counter()
        with self._lock:
            self._stack.append((name, t0))
        self._start_spinner()
        try:
            yield
        except BaseException:
            self._finish(name, t0, ok=False)
            raise
        self._finish(name, t0, ok=True)

    def message(self, text: str) -> None:
        """Write one line of text without garbling the spinner."""
        if self.quiet:
            return
        with self._lock:
            self._write((_CLEAR if self.interactive else "") + text + "\n")

    def close(self) -> None:
        """Stop the spinner and clear its line (stages still open are not reported)."""
        self._stop_spinner()
        with self._lock:
            self._stack.clear()

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------
    def _finish(self, name: str, t0: float, *, ok: bool) -> None:
        seconds = time.perf_counter() - t0
        with self._lock:
            self._stack = [s for s in self._stack if s != (name, t0)]
            if ok:
                self.timings[name] = round(seconds, 2)
            if not self.quiet:
                what = f"done in {seconds:.1f} s" if ok else f"failed after {seconds:.1f} s"
                if self.interactive:
                    mark = self._ok if ok else self._fail
                    self._write(f"{_CLEAR}{mark} {name}: {what}\n")
                else:
                    self._write(f"[{name}] {what}\n")
            idle = not self._stack
        if idle:
            self._stop_spinner()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the pipeline
            pass

    def _start_spinner(self) -> None:
        if self.quiet or not self.interactive or self._thread is not None:
            return
        self._wake.clear()
        self._thread = threading.Thread(target=self._spin, name="skullseg-progress", daemon=True)
        self._thread.start()

    def _stop_spinner(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._wake.set()
        thread.join()
        with self._lock:
            self._write(_CLEAR)

    def _spin(self) -> None:
        frame = 0
        while not self._wake.is_set():
            with self._lock:
                if self._stack:
                    names = " > ".join(n for n, _ in self._stack)
                    elapsed = time.perf_counter() - self._stack[-1][1]
                    spinner = self._frames[frame % len(self._frames)]
                    self._write(f"{_CLEAR}{spinner} {names}  {elapsed:.1f} s")
            frame += 1
            self._wake.wait(self.interval_s)
