"""Image-encoder runtimes (ONNX Runtime, OpenVINO) behind one protocol, and the one
function that picks a runtime for a device and precision."""

from .base import DEVICES, PRECISIONS, ImageEncoder, cpu_threads, normalize_rows
from .select import bundle_precision_for, create_image_encoder

__all__ = [
    "DEVICES",
    "PRECISIONS",
    "ImageEncoder",
    "bundle_precision_for",
    "cpu_threads",
    "create_image_encoder",
    "normalize_rows",
]
