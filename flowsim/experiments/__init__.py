"""Experiments built on the core (they import it; the core never imports them):

- :mod:`.figure1`: Figure 1 (gradient descent with the paper's runs beside the exact flow);
- :mod:`.figure2`: Figure 2 (tensor completion grid, CP rank and error against n);
- :mod:`.named`: problems and initializations by name (``flowsim run``, sweeps);
- :mod:`.sweep`: grids of flows from TOML, batched, resumable;
- :mod:`.distributed`: the same batches on Dask.
"""
