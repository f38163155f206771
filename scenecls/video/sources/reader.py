"""Decoding on its own thread. Files: a bounded queue (the decoder waits, nothing is
lost). Live: a one-frame slot that always holds the newest frame (older ones are
dropped and counted, so latency stays bounded). Decoder errors are re-raised in the
consumer; the thread never outlives :meth:`FrameReader.close`."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace

from ...types import Frame
from .base import FrameSource

log = logging.getLogger("scenecls")

_END = object()


class FrameReader:
    """Reads ``source`` on a worker thread. Use as a context manager or call close()."""

    def __init__(self, source: FrameSource, queue_size: int = 64) -> None:
        self.source = source
        self.live = source.live
        self.dropped = 0
        self.frames_read = 0
        self.decode_seconds = 0.0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, queue_size))
        self._slot: object | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="scenecls-decode", daemon=True)

    def start(self) -> FrameReader:
        """Open the source (errors are raised here, in the caller) and start decoding."""
        self.source.open()
        self._thread.start()
        return self

    def __enter__(self) -> FrameReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                t = time.perf_counter()
                frame = self.source.read()
                self.decode_seconds += time.perf_counter() - t
                if frame is None:
                    break
                self.frames_read += 1
                self._put(frame)
        except BaseException as e:  # re-raised in the consumer
            self._error = e
        finally:
            self._put(_END)

    def _put(self, item: object) -> None:
        if self.live:
            with self._cond:
                old = self._slot
                if old is not None and old is not _END:
                    self.dropped += 1
                    if isinstance(old, Frame) and old.gap_before and isinstance(item, Frame):
                        # the frame that marked a gap is dropped: its successor marks it
                        item = replace(item, gap_before=old.gap_before + item.gap_before)
                if self._slot is not _END:
                    self._slot = item
                self._cond.notify_all()
            return
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame (newest for live sources); None at the end of the input.
        Raises the decoder's exception if it failed; TimeoutError after ``timeout``."""
        if self.live:
            with self._cond:
                if not self._cond.wait_for(lambda: self._slot is not None, timeout):
                    raise TimeoutError("no frame from the source")
                item = self._slot
                if item is not _END:
                    self._slot = None
        else:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty as e:
                raise TimeoutError("no frame from the source") from e
            if item is _END:
                self._queue.put(_END)  # later calls see the end too
        if item is _END:
            if self._error is not None:
                raise self._error
            return None
        return item  # type: ignore[return-value]

    def get_ready(self, limit: int) -> list[Frame]:
        """Up to ``limit`` more frames already decoded, without waiting (files only)."""
        out: list[Frame] = []
        while len(out) < limit and not self.live:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                self._queue.put(_END)
                break
            out.append(item)  # type: ignore[arg-type]
        return out

    def close(self, timeout: float = 5.0) -> None:
        """Stop decoding, wait for the thread (at most ``timeout`` s; 1 s for live
        sources, whose reads may block on the network), release the source."""
        self._stop.set()
        self.source.cancel()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            self._thread.join(min(timeout, 1.0) if self.live else timeout)
            if self._thread.is_alive():
                # still blocked inside the decoder: releasing the capture under it is
                # unsafe, so leave both to the process exit (the thread is a daemon)
                log.warning("the source did not stop in time; leaving it to close on exit")
                return
        self.source.close()
