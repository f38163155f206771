"""scenecls: real-time video scene classification with CLIP on ONNX Runtime.

Public API::

    import scenecls
    model = scenecls.load_model("openai/clip-vit-base-patch32", device="auto")
    results = model.classify([image_bgr], ["room", "park", "warehouse"], top_k=3)
"""

__version__ = "0.1.0"

from .errors import SceneclsError
from .labels import Label, LabelSet, resolve_labels
from .model import SceneModel, load_model
from .types import Candidate, Classification, Scores

__all__ = [
    "Candidate",
    "Classification",
    "Label",
    "LabelSet",
    "SceneModel",
    "SceneclsError",
    "Scores",
    "__version__",
    "load_model",
    "resolve_labels",
]
