"""Annotations, TFRecords (writing and reading) and the preprocessing shared by training and serving."""
