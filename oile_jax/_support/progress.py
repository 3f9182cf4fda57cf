"""A plain-text progress bar for host loops (no dependency)."""

import sys
import time


class ProgressBar:
    """`ProgressBar(total, label)`; `update(done)` redraws; `close()` ends the line.

    Draws to stderr; with `enabled=None` only when stderr is a terminal.
    """

    def __init__(self, total: int, label: str = "", *, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = max(int(total), 1)
        self.label = label
        self.start = time.perf_counter()

    def update(self, done: int, note: str = ""):
        if not self.enabled:
            return
        fraction = min(done / self.total, 1.0)
        elapsed = time.perf_counter() - self.start
        # No remaining-time estimate before the first chunk is done.
        eta = f"eta {elapsed * (1 - fraction) / fraction:6.1f}s" if fraction > 0 else "eta   ..."
        bar = "#" * int(30 * fraction) + "." * (30 - int(30 * fraction))
        self.stream.write(
            f"\r{self.label} [{bar}] {100 * fraction:5.1f}% {elapsed:7.1f}s elapsed, {eta} {note}"
        )
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
