"""bci: brain-signal decoding and closed-loop brain-computer interfaces.

``import bci`` is cheap: subpackages and the top-level helpers are imported on first use.

Examples
--------
>>> import bci
>>> bci.get_pipeline("TS+LR")  # doctest: +SKIP
>>> results = bci.benchmark(dataset="PhysionetMI", paradigm="LeftRightImagery",
...                         pipelines=["CSP+LDA", "TS+SVM"], subjects=[1])  # doctest: +SKIP
"""

import lazy_loader as _lazy

from ._logging import set_log_level

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["data", "features", "models", "pipelines", "evaluation", "realtime", "hw"],
    submod_attrs={
        # offline (MOABB) and pseudo-online evaluations; the latter replays through the
        # real-time loop, so the entry point that knows both lives in bci.realtime
        "realtime.pseudo_online": ["benchmark"],
        "pipelines.registry": ["get_pipeline", "list_pipelines"],
        "models.decoder": ["load_decoder", "save_decoder"],
        "pipelines.train": ["train_decoder"],
        "data.loaders": ["load_data", "load_epochs"],
    },
)
__all__ += ["__version__", "set_log_level"]
