"""Experiments, runs, params, metrics, datasets and logged models."""
