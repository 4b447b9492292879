"""Analysis metrics for visually grounded speech models (issue 6), as pure NumPy functions.

* ``abx``: DTW-based ABX phone discriminability (sota-and-metrics.md D.1).
* ``rsa``: representational similarity analysis (D.2).
* ``probes``: diagnostic classifiers and relative error reduction (D.3).
* ``boundaries``: peak-picking boundary detection, P/R/F1 and R-value (D.4).

Inputs are NumPy arrays (activations already extracted from a model); nothing here
imports JAX or touches a model.
"""
