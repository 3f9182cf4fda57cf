"""How encounters are sampled: the angle models, the schedules, the random streams,
the run specification."""
