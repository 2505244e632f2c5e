"""Optimising the pixels: L-BFGS and Adam with the pyramid parameterisation (optimise.py), the
starting image (starts.py), and the schedule's policy between and after scales (policy.py)."""
