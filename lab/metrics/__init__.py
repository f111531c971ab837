"""Measuring runs: the oracle of acknowledged writes, histograms and the recorder."""
