"""The Python API page's example (docs/reference/api.md, "An example of each") runs as
written, on the trained fixture model instead of the hub download, in a folder holding a
photo, a sample video and its moments; and it does what it says: the run summary, the
segments and frames files, and the set taught from the moments."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from .docs_blocks import section_blocks

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "shapes-clip"
VIDEO = REPO.parent / "shared" / "media" / "car-detection.mp4"
API_PAGE = REPO / "docs" / "reference" / "api.md"
EXAMPLE_HEADING = "## An example of each"


def _api_example() -> str:
    """The one ```python block of the API page's example section."""
    found = section_blocks(API_PAGE, EXAMPLE_HEADING, "python")
    assert len(found) == 1, "the API page's example section should have one ```python block"
    return found[0].code


def test_api_page_example_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    if not VIDEO.is_file():
        pytest.fail(f"{VIDEO} is missing: the tests need ../shared beside the checkout")
    code = _api_example()
    assert '"openai/clip-vit-base-patch32"' in code
    code = code.replace('"openai/clip-vit-base-patch32"', repr(str(FIXTURE)))
    cap = cv2.VideoCapture(str(VIDEO))
    ok, frame = cap.read()
    cap.release()
    assert ok
    cv2.imwrite(str(tmp_path / "photo.jpg"), frame)
    # the first 4 seconds of the sample keep the test quick
    shutil.copy(VIDEO, tmp_path / "full.mp4")
    src = cv2.VideoCapture(str(tmp_path / "full.mp4"))
    fps = src.get(cv2.CAP_PROP_FPS)
    size = (int(src.get(cv2.CAP_PROP_FRAME_WIDTH)), int(src.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    out = cv2.VideoWriter(str(tmp_path / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(int(4 * fps)):
        ok, img = src.read()
        if not ok:
            break
        out.write(img)
    out.release()
    src.release()
    (tmp_path / "moments.csv").write_text("label,start,end\nfirst half,0,2\nsecond half,2,4\n")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/reference/api.md (example)", "exec"), {"__name__": "api_example"})
    printed = capsys.readouterr().out
    assert "frames" in printed  # the run summary
    assert (tmp_path / "segments.csv").read_text().startswith("label,start,end,confidence")
    assert len((tmp_path / "frames.jsonl").read_text().splitlines()) >= int(4 * fps) - 1
    assert scenecls_labels(tmp_path / "moments.npz") == ["first half", "second half"]


def scenecls_labels(path: Path) -> list[str]:
    import scenecls

    return scenecls.load_taught(path).names
