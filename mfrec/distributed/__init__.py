"""Training on a Dask cluster (the optional ``mfrec[dask]`` extra).

The ratings are read and numbered on the cluster (`ingest`), shuffled once into a grid of
blocks that stay on their workers, and trained there: ``sgd`` and ``minibatch`` as DSGD
(`dsgd`), ``bgd`` as distributed full-batch gradient steps (`dbgd`). `fit.fit_dask` runs it
all and fills a `MatrixFactorization` exactly as local training does; `checkpoint` saves and
restores the state between epochs. Nothing here imports Dask until it is used, so the core
install does not need it (`engine.require_dask` says what to install).
"""
