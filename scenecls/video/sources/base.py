"""The frame source interface shared by every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

from ...types import Frame


class FrameSource(ABC):
    """Yields :class:`Frame` s in order. ``live`` sources run on their own clock and may
    be dropped from by the reader; file-like sources wait for the consumer.

    Attributes set by :meth:`open`: ``fps`` (nominal frames per second, or None),
    ``frame_count`` (None when unknown), ``size`` ((width, height) or None).
    ``skipped`` counts frames (or files) that could not be decoded and were passed over.
    """

    live: bool = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.fps: float | None = None
        self.frame_count: int | None = None
        self.size: tuple[int, int] | None = None
        self.skipped = 0

    @abstractmethod
    def open(self) -> None:
        """Open the source; raise :class:`~scenecls.errors.InputError` with what to do."""

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame, or None at the end of the input."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device or file."""

    def cancel(self) -> None:  # noqa: B027 - optional hook
        """Ask a :meth:`read` blocked in another thread (waiting to reconnect) to give
        up soon. Called by the reader when a run stops."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
