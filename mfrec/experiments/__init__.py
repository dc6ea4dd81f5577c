"""Experiments on a ratings set: compare solvers, cross-validate, tune hyperparameters."""
