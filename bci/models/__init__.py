"""Models: deep decoders, their Lightning training, scikit-learn wrapper and decoder files.

Spiking neurons and decoders are in :mod:`bci.models.spiking`.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "decoder": ["Decoder", "load_decoder", "save_decoder"],
    "registry": ["MODELS", "get_model"],
    "classifier": ["DeepClassifier"],
    "training": ["DecoderModule", "plot_training_curves", "pretrain_model", "train_model"],
    "neurogpt": ["NeuroGPT", "save_pretrained"],
    "contact_set": ["ContactSetNet", "contact_regions_from_names", "place_contacts",
                    "slot_layout"],
}, submodules=["spiking"])
