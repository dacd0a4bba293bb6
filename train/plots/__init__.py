"""Figures drawn from a run's results: training curves and confusion matrices."""
