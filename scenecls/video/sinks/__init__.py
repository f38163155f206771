"""Sinks: what a run writes or shows. Any combination can be used at once."""

from ...errors import OutputError
from .base import EmbeddingBatch, RunInfo, Sink, check_writable, write_text_atomic
from .embeddings import EmbeddingsSink
from .files import CaptionSink, JsonlSink, SegmentsSink, captions_text
from .recording import RecordingSink
from .video import VideoSink
from .window import WindowSink, run_with_window

__all__ = [
    "CaptionSink",
    "EmbeddingBatch",
    "EmbeddingsSink",
    "JsonlSink",
    "OutputError",
    "RecordingSink",
    "RunInfo",
    "SegmentsSink",
    "Sink",
    "VideoSink",
    "WindowSink",
    "captions_text",
    "check_writable",
    "run_with_window",
    "write_text_atomic",
]
