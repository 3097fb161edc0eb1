"""A small progress line on stderr: `label  n/total  rate  ETA`. On a terminal it redraws one line
(`\\r`, at most ten times a second); otherwise (a log file, a pipe) it prints an occasional full
line: every tenth of the way or every 30 s, whichever comes first, and at the end."""

import sys
import time


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    def __init__(self, label, total, unit="", stream=None):
        self.label, self.total, self.unit = label, max(int(total), 0), unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done, self.note = 0, ""
        self.started = self.shown_at = time.monotonic()
        self.shown_tenth = 0

    def line(self):
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}  {self.done}/{self.total}{(' ' + self.unit) if self.unit else ''}"
        if rate > 0:
            text += f"  {rate:.1f}/s" if rate >= 1 else f"  {1 / rate:.1f} s each"
            if self.done < self.total:
                text += f"  ETA {_duration((self.total - self.done) / rate)}"
            else:
                text += f"  in {_duration(elapsed)}"
        return text + (f"  {self.note}" if self.note else "")

    def update(self, n=1, note=None):
        """`n` more done; `note` (e.g. the latest validation figure) is shown after the ETA."""
        self.done = min(self.done + n, self.total) if self.total else self.done + n
        if note is not None:
            self.note = note
        now = time.monotonic()
        if self.tty:
            if now - self.shown_at >= 0.1 or self.done >= self.total:
                self.stream.write("\r\033[K" + self.line())
                self.stream.flush()
                self.shown_at = now
        else:
            tenth = 10 * self.done // self.total if self.total else 0
            if tenth > self.shown_tenth or now - self.shown_at >= 30:
                self.stream.write(self.line() + "\n")
                self.stream.flush()
                self.shown_at, self.shown_tenth = now, tenth

    def close(self, note=None):
        """The final line (once), ending the redrawn one on a terminal."""
        if note is not None:
            self.note = note
        if self.tty:
            self.stream.write("\r\033[K" + self.line() + "\n")
        elif self.shown_tenth < 10 or note is not None:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
