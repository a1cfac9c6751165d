"""Freeze the garbage collector of the process that imports this module (the fork server).

:func:`bci.evaluation.cluster.local_client` names this module last in the preload list of
multiprocessing's fork server, which imports MNE, MOABB, pyRiemann and torch once and forks
every Dask worker from there. :func:`gc.freeze` moves every object alive at that point into the
collector's permanent generation, which (Python's documented use of it) keeps the forked
workers from touching, and so copying, the pages of those objects when they collect, and spares
the fork server its final collection over them when it exits (about 1 s of CPU on this 2-core
machine, which the command's caller waits for: the server holds its standard streams).
Nothing else imports this module.
"""

import gc

gc.freeze()
