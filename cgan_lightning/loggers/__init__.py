"""Weights & Biases tracking: the saved config, per-class tables, and run finishing."""
