"""Shared fixtures: a tiny random-weight CLIP in the hub's layout, its bundle, real frames.

No test touches the network: HF_HUB_OFFLINE is set before anything imports the hub.
Everything heavy is built once per session into a temporary folder.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))  # the scripts' helpers (shared paths, model builder)

from _common import MEDIA, SHARED, ensure_ref_model  # noqa: E402

VIDEOS = sorted(p for p in MEDIA.glob("*") if p.suffix in {".mp4", ".gif"})


def _need_shared() -> None:
    if not (SHARED / "tools" / "make_ref_model.py").is_file() or not VIDEOS:
        pytest.fail(
            f"{SHARED} (shared tools and media) is missing: set SCENECLS_SHARED", pytrace=False
        )


def build_ref_model(out: Path, tiny: bool) -> Path:
    """Run the shared make_ref_model.py tool: a random CLIP in the hub's layout."""
    _need_shared()
    return ensure_ref_model(out, tiny=tiny)


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test gets its own empty SCENECLS_HOME (cache)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SCENECLS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP checkpoint folder in the Hugging Face hub layout."""
    return build_ref_model(tmp_path_factory.mktemp("hf") / "tiny-clip", tiny=True)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint exported to an fp32 bundle (read-only for tests: copy to alter)."""
    from scenecls.model.export import export_bundle

    return export_bundle(str(tiny_hf), tmp_path_factory.mktemp("bundles") / "tiny-fp32")


@pytest.fixture(scope="session")
def full_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full-size ViT-B/32 architecture with random weights, hub layout (about 600 MB:
    built once per session, for the tests that need real speed)."""
    return build_ref_model(tmp_path_factory.mktemp("full") / "clip-b32", tiny=False)


@pytest.fixture(scope="session")
def full_bundle(full_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scenecls.model.export import export_bundle

    return export_bundle(str(full_hf), tmp_path_factory.mktemp("bundles") / "full-fp32")


@pytest.fixture(scope="session")
def tiny_model(tiny_bundle: Path):
    import scenecls

    return scenecls.load_model(tiny_bundle, device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def real_frames() -> list:  # type: ignore[type-arg]
    """Three frames from every sample video in shared/media (BGR uint8)."""
    _need_shared()
    from scenecls.video.sources import sample_frames

    return [f for v in VIDEOS for f in sample_frames(v, 3)]


@pytest.fixture(autouse=True)
def _scenecls_logger_restored() -> Iterator[None]:
    """The ``scenecls`` logger as it was before each test: ``main()`` gives it a stderr
    handler and stops its propagation (the CLI's own output), which would hide its
    records from ``caplog`` in every later test (seen with pytest 9.0.3)."""
    logger = logging.getLogger("scenecls")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


class LogLines(logging.Handler):
    """The ``scenecls`` logger's records (whatever the CLI did to its propagation):
    ``records``, their messages as ``lines``, and :meth:`having`."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def having(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


@pytest.fixture
def scenecls_log() -> Iterator[LogLines]:
    """What the ``scenecls`` logger says during the test, from INFO on."""
    logger = logging.getLogger("scenecls")
    handler, level = LogLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
