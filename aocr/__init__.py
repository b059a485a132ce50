"""aocr: attention-based OCR with TensorFlow, from annotated images to a served model."""

__version__ = "1.0.0"
