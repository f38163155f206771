"""The video layer: frame sources, the pipeline, smoothing, overlays and sinks.

Imports the model layer and the shared types, never the applications above it.
"""
