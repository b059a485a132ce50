"""Training: the training graph (graph), one machine's or a cluster's session strategy (strategy, cluster,
distributed), the loop (loop) with its checkpoints, validation and summaries, warm starts (warm_start), and
trainer, which puts them together from a TrainConfig."""
