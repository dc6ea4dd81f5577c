"""Training: the estimator's fitting, the epoch loop, the objective, optimizers, block grids and
the solvers (arrays only)."""
