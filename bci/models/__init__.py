"""Models: decoders and decoder files (:class:`~bci.models.decoder.Decoder`)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "decoder": ["Decoder", "load_decoder", "save_decoder", "train_decoder"],
})
