"""Runs ``scenecls`` with one phase made slow, so a test can signal it mid-phase.

    python -m tests.slow_phase PHASE MARKER -- scenecls arguments...

PHASE is ``export`` (writing the ONNX files), ``load`` (loading the model) or ``write``
(writing the segment file at the end). When the phase starts, MARKER is created; the
phase then takes 60 s longer than it should, the way a big model, a slow disk or a slow
network share would. Only this test helper is patched: the product code runs as is.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _slow(marker: Path, seconds: float = 60.0) -> None:
    marker.touch()
    time.sleep(seconds)


def main() -> int:
    phase, marker = sys.argv[1], Path(sys.argv[2])
    assert sys.argv[3] == "--"
    argv = sys.argv[4:]
    if phase == "export":
        import scenecls.model.export as export

        real_export = export._export_into

        def slow_export(model_dir, out, **kw):  # type: ignore[no-untyped-def]
            (out / "visual.onnx").write_bytes(b"half an ONNX file")  # work in progress
            _slow(marker)
            return real_export(model_dir, out, **kw)

        export._export_into = slow_export
    elif phase == "load":
        import scenecls.model.scene_model as model

        real_load = model.load_model

        def slow_load(*a, **kw):  # type: ignore[no-untyped-def]
            _slow(marker)
            return real_load(*a, **kw)

        model.load_model = slow_load
    elif phase == "write":
        from scenecls.video.sinks import files

        real_finish = files.SegmentsSink.finish

        def slow_finish(self, segments):  # type: ignore[no-untyped-def]
            _slow(marker)
            return real_finish(self, segments)

        files.SegmentsSink.finish = slow_finish  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown phase {phase}")
    from scenecls.cli import main as scenecls_main

    return scenecls_main(argv)


if __name__ == "__main__":
    sys.exit(main())
