"""Progress bars: shown on terminals only, with count, percentage, rate and ETA; logs
written while a bar is open appear above it."""

from __future__ import annotations

import io
import logging

from scenecls.archive.progress import ArchiveProgress
from scenecls.video.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal() -> None:
    out = _Tty()
    p = Progress(stream=out)
    p.update(50, 200, force=True)
    text = out.getvalue()
    assert "frames" in text and "50/200" in text and "25%" in text and "frames/s" in text
    assert "<" in text  # elapsed<remaining: the ETA
    p.update(60, None, force=True)
    assert "60/200" in out.getvalue()
    p.close()


def test_unknown_length_shows_count_and_rate() -> None:
    out = _Tty()
    p = Progress(stream=out)
    p.update(60, None, force=True)
    assert "60 frames" in out.getvalue() and "%" not in out.getvalue()
    p.close()


def test_no_progress_when_not_a_terminal_or_disabled() -> None:
    pipe = io.StringIO()
    p = Progress(stream=pipe)
    p.update(10, 20, force=True)
    p.close()
    assert pipe.getvalue() == ""
    tty = _Tty()
    Progress(enabled=False, stream=tty).update(10, 20, force=True)
    assert tty.getvalue() == ""


def test_archive_bar_shows_videos_failures_rate_and_eta() -> None:
    out = _Tty()
    bar = ArchiveProgress(40, 1000, stream=out)
    bar.update(12, 1, 370, 55.0, force=True)
    text = out.getvalue()
    assert "videos 12/40, 1 failed" in text and "37%" in text and "video-s/s" in text
    assert "ETA" in text
    bar.close()


def test_a_log_line_goes_above_an_open_bar_and_handlers_come_back() -> None:
    log = logging.getLogger("scenecls")
    before = list(log.handlers)
    out = _Tty()
    p = Progress(stream=out)
    p.update(5, 10, force=True)
    assert log.handlers != before  # routed through tqdm while the bar is open
    p.close()
    assert log.handlers == before
