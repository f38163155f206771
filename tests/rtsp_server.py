"""An RTSP server for the tests: GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0), run by the system Python that has ``gi``:

    /usr/bin/python3 tests/rtsp_server.py PORT VIDEO.mp4 [MOUNT]

serves the H.264 of VIDEO.mp4 in a loop (no re-encoding) at rtsp://127.0.0.1:PORT/MOUNT
(default /pass), prints ``ready`` once it listens, and stops on SIGTERM or SIGINT.
SIGUSR1 stalls the stream (a valve drops the video, the connection stays open) and
SIGUSR2 lets it go on. With ``RTSP_SERVER_LOGIN=USER:PASSWORD`` in the environment the
stream needs that login (HTTP Basic authentication).
"""

from __future__ import annotations

import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    port, video = sys.argv[1], sys.argv[2]
    mount = sys.argv[3] if len(sys.argv) > 3 else "/pass"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( multifilesrc location={video} loop=true ! qtdemux ! h264parse "
        "! valve name=stall drop=false ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    medias: list = []
    factory.connect("media-configure", lambda f, media: medias.append(media))
    login = os.environ.get("RTSP_SERVER_LOGIN")  # USER:PASSWORD: the stream needs it
    if login:
        user, _, password = login.partition(":")
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        return 1
    loop = GLib.MainLoop()

    def stall(stalled: bool) -> bool:
        for media in medias:  # the valve drops the video; the connection stays open
            valve = media.get_element().get_by_name("stall")
            if valve is not None:
                valve.set_property("drop", stalled)
        return False

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, lambda: stall(True) or True)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR2, lambda: stall(False) or True)
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
