"""A real X display for the window tests: Xvfb, keys through xdotool, screen grabs
through xwd, and the close message a window manager sends (through python-xlib).

The tests fail (not skip) under CI when a tool is missing; ``.ci/run`` installs them
(Debian: xvfb, xdotool, x11-apps).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

TOOLS = ("Xvfb", "xdotool", "xwd")


def need_x_tools() -> None:
    """Skip (fail under CI) when Xvfb, xdotool or xwd is missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not missing:
        return
    why = f"no {', '.join(missing)} here: apt-get install xvfb xdotool x11-apps"
    if os.environ.get("CI"):
        pytest.fail(f"CI must install the X tools ({why})")
    pytest.skip(f"{why} (CI installs them)")


class Xvfb:
    """A virtual X server on a free display number, ``width`` x ``height`` x 24 bits."""

    def __init__(self, width: int = 1280, height: int = 800) -> None:
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
             "-nolisten", "tcp", "-noreset"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(write_fd)
        number = b""
        with os.fdopen(read_fd, "rb") as f:
            while not number.endswith(b"\n"):
                chunk = f.read(1)
                if not chunk:
                    raise RuntimeError("Xvfb exited before it said which display it took")
                number += chunk
        self.display = f":{int(number)}"
        self.env = {**os.environ, "DISPLAY": self.display}

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=20, check=False
        )

    def windows(self, name: str) -> list[int]:
        """Ids of the visible windows whose title matches the regex ``name``."""
        out = self._run("xdotool", "search", "--onlyvisible", "--name", name).stdout
        return [int(w) for w in out.split()]

    def wait_window(
        self, name: str, timeout: float = 60.0, proc: subprocess.Popen | None = None
    ) -> int:  # type: ignore[type-arg]
        """The id of the first visible window titled ``name``, once it is on screen.

        The window is then unmapped and mapped again, as a window manager maps a new
        window: under a bare X server Qt now and then (about 1 window in 100 here) misses
        its window's first map event and never paints it; a second map is seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.windows(name)
            if found:
                self._run("xdotool", "windowunmap", "--sync", str(found[0]))
                self._run("xdotool", "windowmap", "--sync", str(found[0]))
                return found[0]
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the command ended (exit {proc.returncode}) with no window")
            time.sleep(0.02)
        raise AssertionError(f"no window titled {name!r} within {timeout} s")

    def wait_picture(self, window: int, rows: int, timeout: float = 60.0) -> float:
        """``time.monotonic()`` when the top ``rows`` of ``window`` first show a picture:
        neither unpainted (all 0) nor scenecls's dark placeholder (all 16)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            region = self.grab_window(window)[:rows]
            if region.size and not ((region == 16).all() or (region == 0).all()):
                return time.monotonic()
        raise AssertionError(f"window {window} showed no picture within {timeout} s")

    def geometry(self, window: int) -> tuple[int, int, int, int]:
        """``(x, y, width, height)`` of ``window`` on the screen."""
        out = self._run("xdotool", "getwindowgeometry", "--shell", str(window)).stdout
        values = dict(line.split("=", 1) for line in out.split() if "=" in line)
        return tuple(int(values[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))  # type: ignore[return-value]

    def key(self, window: int, key: str) -> None:
        """Press and release ``key`` (an X key name: space, q, Escape, s, f) in
        ``window``, as a keyboard does: the window gets the focus, then the key goes
        through the server's XTEST input (xdotool's ``key --window`` instead sends
        synthetic events, which can leave the server repeating a key into the next
        window that gets the focus)."""
        self._run("xdotool", "windowfocus", "--sync", str(window), "key", key)

    def grab(self) -> np.ndarray:
        """The whole screen as it is now: HxWx3 uint8 BGR."""
        data = subprocess.run(
            ["xwd", "-root", "-silent"], env=self.env, capture_output=True, timeout=20, check=True
        ).stdout
        return read_xwd(data)

    def grab_window(self, window: int) -> np.ndarray:
        """The part of the screen ``window`` covers: HxWx3 uint8 BGR."""
        x, y, w, h = self.geometry(window)
        return self.grab()[y : y + h, x : x + w]

    def close_window(self, window: int) -> None:
        """Ask ``window`` to close, as a window manager does when its close button is
        clicked (a WM_DELETE_WINDOW client message)."""
        from Xlib import X, display, protocol

        d = display.Display(self.display)
        try:
            target = d.create_resource_object("window", window)
            message = protocol.event.ClientMessage(
                window=target,
                client_type=d.intern_atom("WM_PROTOCOLS"),
                data=(32, [d.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]),
            )
            target.send_event(message, event_mask=X.NoEventMask)
            d.flush()
        finally:
            d.close()


def read_xwd(data: bytes) -> np.ndarray:
    """A true-colour ZPixmap XWD dump (what ``xwd`` writes) as HxWx3 uint8 BGR."""
    fields = struct.unpack(">25I", data[:100])
    header_size, version, pixmap_format, _depth, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    masks, colours = fields[14:17], fields[19]
    n = bits_per_pixel // 8
    if version != 7 or pixmap_format != 2 or n not in (3, 4):
        raise ValueError(f"not a true-colour XWD dump: {fields[:13]}")
    start = header_size + 12 * colours
    rows = np.frombuffer(data, np.uint8, count=height * bytes_per_line, offset=start)
    pixels = rows.reshape(height, bytes_per_line)[:, : width * n].reshape(height, width, n)
    order = range(n) if byte_order == 0 else range(n - 1, -1, -1)  # LSBFirst: byte 0 lowest
    value = np.zeros((height, width), np.uint32)
    for shift, i in enumerate(order):
        value |= pixels[:, :, i].astype(np.uint32) << np.uint32(8 * shift)
    red, green, blue = (
        ((value & np.uint32(m)) >> np.uint32((m & -m).bit_length() - 1)).astype(np.uint8)
        for m in masks
    )
    return np.dstack([blue, green, red])


def save_png(image_bgr: np.ndarray, path: Path) -> None:
    """Write a grab (HxWx3 uint8 BGR) as a PNG, for a person to look at."""
    import cv2

    cv2.imwrite(str(path), image_bgr, [cv2.IMWRITE_PNG_COMPRESSION, 9])
