"""Features: scikit-learn transformers (augmented covariance, epoch checks).

Covariances, tangent space and MDM come from pyRiemann; this package adds what it lacks.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "augmented": ["AugmentedCovariance", "delay_embedding"],
    "validation": ["CheckEpochs"],
    "rank": ["SubspaceProjection", "estimate_rank"],
})
