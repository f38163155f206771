"""Teaching labels by example: examples gathered from pictures, moments of videos and
stored embeddings; what to label next (``suggest``); the training report page."""
