"""Pipelines: the registry of named decoding pipelines and the training of decoder files.

The registry builds scikit-learn pipelines from :mod:`bci.features` and networks from
:mod:`bci.models`, so it lives above both (data flows ``data -> features -> models -> pipelines
-> evaluation -> realtime -> hw``).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "registry": ["DEEP_SETTINGS", "PIPELINES", "PipelineSpec", "get_pipeline", "get_spec",
                 "list_pipelines", "paradigm_for"],
    "train": ["train_decoder"],
})
