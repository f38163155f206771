"""The error hierarchy. Every message says what was wrong and what to do about it.

The CLI is the one place that catches :class:`SceneclsError`, prints its message as a
single line and exits with :attr:`SceneclsError.exit_code`.
"""

from __future__ import annotations


class SceneclsError(Exception):
    """Base class of every error scenecls raises on purpose. Exit code 1."""

    exit_code = 1


class UsageError(SceneclsError):
    """The user asked for something inconsistent or malformed. Exit code 2."""

    exit_code = 2


class LabelError(UsageError):
    """A label set (inline, preset or TOML file) or a template is invalid."""


class InputError(SceneclsError):
    """An input file (image, video) is missing or cannot be decoded."""


class RegionError(InputError):
    """The region of interest (``--region``) does not fit a frame or image. Exit code 2:
    the command line asks for a part of the frame that is not there."""

    exit_code = 2


class ModelNotFoundError(SceneclsError):
    """``--model`` names nothing that can be found or downloaded."""


class NetworkError(ModelNotFoundError):
    """The model is not cached and the Hugging Face hub cannot be reached."""


class BundleError(SceneclsError):
    """A bundle folder is incomplete, altered, or from an incompatible export."""


class DeviceError(SceneclsError):
    """The requested execution device (for example CUDA) is not usable here."""


class ExportError(SceneclsError):
    """Exporting a checkpoint to ONNX failed."""


class OutputError(SceneclsError):
    """Writing an output failed (disk full, permissions, no encoder)."""
