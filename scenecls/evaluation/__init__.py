"""Accuracy evaluation: metrics, the image-folder and truth-segment evaluations, plots.

Imports the video and model layers.
"""
