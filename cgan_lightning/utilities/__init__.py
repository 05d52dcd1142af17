"""Helpers shared across the package: argument checks, checkpoint-file checks, image grids."""
