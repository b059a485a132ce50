"""`aocr export`'s library: the export graph (graph), SavedModels and frozen graphs (export) and TensorFlow Lite
models (tflite). The SavedModel contract that serving reads lives in aocr.core.savedmodel."""
