"""scenecls: real-time video scene classification with CLIP on ONNX Runtime.

Public API::

    import scenecls

    model = scenecls.load_model("openai/clip-vit-base-patch32", device="auto")
    results = model.classify([image_bgr], ["room", "park", "warehouse"], top_k=3)

    source = scenecls.open_source("video.mp4")
    sinks = [scenecls.JsonlSink("frames.jsonl"), scenecls.SegmentsSink("segments.csv")]
    stats = scenecls.Pipeline(model, "room,park,warehouse", source, sinks).run()

    sinks.append(scenecls.EmbeddingsSink("video.embeddings.npz"))  # for search, relabel
    stored = scenecls.open_embeddings("video.embeddings.npz")  # rows memory-mapped

Everything here is re-exported from the layer packages (:mod:`scenecls.model`,
:mod:`scenecls.video`); import from this module, the layout below it may change.
"""

from .errors import SceneclsError
from .model import Label, LabelSet, SceneModel, load_model, resolve_labels
from .model.embeddings_store import EmbeddingsFile, open_embeddings
from .model.scene_model import TextModel, load_text_model
from .types import Candidate, Classification, Frame, Prediction, Scores, Segment
from .version import __version__
from .video.pipeline import Pipeline, PipelineConfig, RunStats
from .video.sinks import (
    CaptionSink,
    EmbeddingsSink,
    JsonlSink,
    SegmentsSink,
    Sink,
    VideoSink,
    WindowSink,
    run_with_window,
)
from .video.smoothing import Smoother, SmoothingConfig
from .video.sources import (
    FrameSource,
    ImageFolderSource,
    LiveCaptureSource,
    SimulatedLiveSource,
    VideoFileSource,
    open_source,
)

__all__ = [
    "Candidate",
    "CaptionSink",
    "Classification",
    "EmbeddingsFile",
    "EmbeddingsSink",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "JsonlSink",
    "Label",
    "LabelSet",
    "LiveCaptureSource",
    "Pipeline",
    "PipelineConfig",
    "Prediction",
    "RunStats",
    "SceneModel",
    "SceneclsError",
    "Scores",
    "Segment",
    "SegmentsSink",
    "SimulatedLiveSource",
    "Sink",
    "Smoother",
    "SmoothingConfig",
    "TextModel",
    "VideoFileSource",
    "VideoSink",
    "WindowSink",
    "__version__",
    "load_model",
    "load_text_model",
    "open_embeddings",
    "open_source",
    "resolve_labels",
    "run_with_window",
]
