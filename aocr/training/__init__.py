"""Training: the training graph (graph); the session strategy of one machine (strategy) or of a cluster
(cluster: the chief's, workers' and parameter servers' sessions; distributed: reading TF_CONFIG); the loop
(loop) with its checkpoints, validation and summaries; warm starts from another model (warm_start); and
trainer, which puts them together as a TrainConfig says."""
