"""Tasks: a dataset generator, training recipes and evaluation for each thing a shadow is trained to do."""
