"""scenecls: real-time video scene classification with CLIP on ONNX Runtime.

Public API::

    import scenecls

    model = scenecls.load_model("openai/clip-vit-base-patch32", device="auto")
    results = model.classify([image_bgr], ["room", "park", "warehouse"], top_k=3)

    source = scenecls.open_source("video.mp4")
    sinks = [scenecls.JsonlSink("frames.jsonl"), scenecls.SegmentsSink("segments.csv")]
    stats = scenecls.Pipeline(model, "room,park,warehouse", source, sinks).run()

    sinks.append(scenecls.EmbeddingsSink("video.embeddings"))  # a store folder, for search
    stored = scenecls.open_embeddings("video.embeddings")  # rows memory-mapped (.npz too)

    taught = scenecls.teach("examples/", model)  # examples/<label>/*.jpg
    print(taught.report["cross_validation"]["accuracy"])  # before use
    taught.save("pizza.npz")  # --labels pizza.npz, or pass taught as labels

Everything here is re-exported from the layer packages (:mod:`scenecls.model`,
:mod:`scenecls.video`); import from this module, the layout below it may change.
"""

from .errors import SceneclsError
from .model import Label, LabelSet, SceneModel, load_model, resolve_labels
from .model.embeddings_store import EmbeddingsFile, open_embeddings
from .model.scene_model import TextModel, load_labels, load_text_model
from .model.taught import ExampleSet, TaughtSet, load_taught
from .region import Region, parse_region
from .teaching.api import teach
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
    "ExampleSet",
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
    "Region",
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
    "TaughtSet",
    "TextModel",
    "VideoFileSource",
    "VideoSink",
    "WindowSink",
    "__version__",
    "load_labels",
    "load_model",
    "load_taught",
    "load_text_model",
    "open_embeddings",
    "open_source",
    "parse_region",
    "resolve_labels",
    "run_with_window",
    "teach",
]
