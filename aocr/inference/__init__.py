"""Reading text with a trained model: the inference graph from image bytes (graph), the Recognizer over a
checkpoint (recognizer), test's evaluation (evaluate), predict's reading of image files (predict), their
metrics and the attention images (visualize, templates/)."""
