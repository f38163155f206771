"""The package version (one place, read by the public API, the CLI and bundle.json)."""

__version__ = "0.1.0"
