"""The progress line: shown on terminals only, with count, percentage, fps and ETA."""

from __future__ import annotations

import io

from scenecls.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal() -> None:
    out = _Tty()
    p = Progress(stream=out)
    p.update(50, 200, force=True)
    text = out.getvalue()
    assert "frames 50/200" in text and "25%" in text and "fps" in text and "ETA" in text
    p.update(60, None, force=True)
    assert "frames 60 " in out.getvalue()
    p.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_no_progress_when_not_a_terminal_or_disabled() -> None:
    pipe = io.StringIO()
    Progress(stream=pipe).update(10, 20, force=True)
    assert pipe.getvalue() == ""
    tty = _Tty()
    Progress(enabled=False, stream=tty).update(10, 20, force=True)
    assert tty.getvalue() == ""
