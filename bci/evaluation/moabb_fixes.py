"""Workarounds for MOABB defects that change benchmark numbers, each documented in one place.

MOABB evaluations drop filter-bank bands
----------------------------------------
From MOABB 1.3 (PR NeuroTechX/moabb#774) to at least 1.7.2, every evaluation
(``WithinSessionEvaluation``, ``CrossSessionEvaluation``, ``CrossSubjectEvaluation``,
``WithinSubjectEvaluation``) builds the paradigm's processing pipelines, keeps only the first
one and then asks the paradigm for the data of that single pipeline:

- ``moabb/evaluations/base.py`` (1.7.2), ``BaseEvaluation._process_parallel``, lines 1080-1085:
  ``process_pipeline = self.paradigm.make_process_pipelines(dataset, ...)[0]``
  (the ``[0]`` was meant only as the key of the results cache, PR #447);
- ``moabb/evaluations/base.py`` (1.7.2), ``BaseEvaluation._load_data``, line 597:
  ``"process_pipelines": None if requires_epochs else [process_pipeline]``, passed to
  ``paradigm.get_data``.

A filter-bank paradigm makes one processing pipeline per band (``paradigms/base.py``,
``make_process_pipelines``, lines 360-379), so the pipeline being evaluated receives only the
first band: ``get_data`` stacks the one result it got into ``(n_epochs, n_chans, n_times, 1)``
(``paradigms/base.py`` lines 571-575) instead of ``(n_epochs, n_chans, n_times, n_bands)``.
For ``FilterBankSSVEP`` on Kalunga2016 that is the 12.5-13.5 Hz band alone, and MOABB's SSVEP
TS+LR drops from about 0.69 to 0.44 mean accuracy over 11 subjects. Paradigms with one band
(``SSVEP``, ``MotorImagery``...) and pipelines that take MNE epochs (MOABB's CCA/TRCA/MsetCCA,
for which ``process_pipelines=None``) are not affected.
Upstream code: https://github.com/NeuroTechX/moabb/blob/develop/moabb/evaluations/base.py

:func:`fix_paradigm` returns a copy of a MOABB filter-bank paradigm whose ``get_data``
recognises that truncated request and builds every band, exactly as ``paradigm.get_data``
does outside an evaluation: same bands, same epochs, same labels and metadata, so MOABB's
folds and scores are unchanged apart from the restored bands.

MOABB keys its results cache on that first-band pipeline, which the fix does not change: run
fixed evaluations with ``overwrite=True`` or a fresh ``hdf5_path`` (as
:func:`bci.evaluation.benchmark` does), or MOABB may return scores cached by an unfixed run.

When the workaround is no longer needed
---------------------------------------
The workaround checks at run time, on every ``get_data`` call, that MOABB handed it its own
first-band pipeline alone while the paradigm has several bands; any other request (all the
bands, ``None``, a custom pipeline) goes to MOABB untouched. Once MOABB passes all the bands,
the workaround therefore does nothing. The test ``tests/evaluation/test_moabb_fixes.py::
test_moabb_still_drops_bands`` fails when MOABB no longer drops bands: delete this module and
its call in :mod:`bci.evaluation.benchmarks` then.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from moabb.paradigms import (
    FilterBankLeftRightImagery,
    FilterBankMotorImagery,
    FilterBankSSVEP,
)

logger = logging.getLogger(__name__)


class _AllBandsMixin:
    """``get_data`` that rebuilds every band when a MOABB evaluation asks for the first only."""

    def get_data(self, dataset, subjects=None, return_epochs=False, return_raws=False,
                 cache_config=None, postprocess_pipeline=None, process_pipelines=None,
                 **kwargs):
        """MOABB's ``get_data``, with all filter bands when an evaluation asked for one.

        Parameters and returns are those of
        :meth:`moabb.paradigms.base.BaseProcessing.get_data`. ``process_pipelines`` is set to
        None (build this paradigm's own pipelines, one per band) only when it holds exactly
        the first of this paradigm's pipelines for ``dataset`` and the paradigm has more than
        one band; every other value is passed on unchanged.
        """
        if process_pipelines is not None and self._is_first_band_only(
                dataset, process_pipelines, return_epochs, return_raws, postprocess_pipeline):
            logger.info("%s: MOABB asked for the first of %d filter bands only; building all "
                        "bands (bci.evaluation.moabb_fixes).", dataset.code, len(self.filters))
            process_pipelines = None
        if process_pipelines is not None:
            kwargs["process_pipelines"] = process_pipelines
        return super().get_data(dataset, subjects=subjects, return_epochs=return_epochs,
                                return_raws=return_raws, cache_config=cache_config,
                                postprocess_pipeline=postprocess_pipeline, **kwargs)

    def _is_first_band_only(self, dataset, process_pipelines, return_epochs, return_raws,
                            postprocess_pipeline) -> bool:
        from moabb.analysis.results import get_digest

        if len(process_pipelines) != 1:
            return False
        own = self.make_process_pipelines(dataset, return_epochs=return_epochs,
                                          return_raws=return_raws,
                                          postprocess_pipeline=postprocess_pipeline)
        return len(own) > 1 and get_digest(process_pipelines[0]) == get_digest(own[0])


class AllBandsFilterBankSSVEP(_AllBandsMixin, FilterBankSSVEP):
    """:class:`moabb.paradigms.FilterBankSSVEP` that keeps all its bands inside evaluations.

    Same parameters, bands, epochs and labels as ``FilterBankSSVEP``; see
    :mod:`bci.evaluation.moabb_fixes` for the MOABB defect it works around.
    """


class AllBandsFilterBankMotorImagery(_AllBandsMixin, FilterBankMotorImagery):
    """:class:`moabb.paradigms.FilterBankMotorImagery` that keeps all its bands in evaluations.

    See :mod:`bci.evaluation.moabb_fixes`.
    """


class AllBandsFilterBankLeftRightImagery(_AllBandsMixin, FilterBankLeftRightImagery):
    """:class:`moabb.paradigms.FilterBankLeftRightImagery` that keeps all its bands in evaluations.

    See :mod:`bci.evaluation.moabb_fixes`.
    """


#: MOABB filter-bank paradigm -> the subclass that keeps all bands inside evaluations.
ALL_BANDS = {
    FilterBankSSVEP: AllBandsFilterBankSSVEP,
    FilterBankMotorImagery: AllBandsFilterBankMotorImagery,
    FilterBankLeftRightImagery: AllBandsFilterBankLeftRightImagery,
}


def fix_paradigm(paradigm: Any, dataset: Any) -> Any:
    """Return a paradigm whose MOABB evaluations see all its filter bands.

    MOABB 1.3 to 1.7.2 evaluations hand a filter-bank paradigm's pipelines only its first band
    (see :mod:`bci.evaluation.moabb_fixes` for the defect, the MOABB lines and how this fix
    turns itself off). Call this on the paradigm right before building the evaluation::

        paradigm = fix_paradigm(paradigm, dataset)
        WithinSessionEvaluation(paradigm=paradigm, datasets=[dataset], ...).process(pipes)

    Parameters
    ----------
    paradigm : moabb.paradigms.base.BaseParadigm
        Any MOABB paradigm. ``FilterBankSSVEP``, ``FilterBankMotorImagery`` and
        ``FilterBankLeftRightImagery`` (exactly these classes) with more than one band for
        ``dataset`` are fixed; every other paradigm is returned as is (with a logged warning
        when it has several bands).
    dataset : moabb.datasets.base.BaseDataset
        The dataset the evaluation will run on (``FilterBankSSVEP`` derives its bands,
        ``[f - 0.5, f + 0.5]`` Hz, from the dataset's stimulation frequencies).

    Returns
    -------
    paradigm : moabb.paradigms.base.BaseParadigm
        ``paradigm`` itself when it needs no fix; otherwise a copy of it (same parameters and
        state) as an ``AllBands*`` subclass, which builds every band when an evaluation asks
        for the first one only. The caller's paradigm is never modified.
    """
    from moabb.paradigms.base import BaseParadigm

    if not isinstance(paradigm, BaseParadigm):
        raise TypeError(f"paradigm must be a MOABB paradigm, got {type(paradigm).__name__}.")
    if isinstance(paradigm, _AllBandsMixin):
        return paradigm
    fixed_cls = ALL_BANDS.get(type(paradigm))
    copied = copy.deepcopy(paradigm)
    copied.prepare_process(dataset)  # sets FilterBankSSVEP's bands from the dataset's events
    n_bands = len(copied.filters or ())
    if n_bands <= 1:
        return paradigm
    if fixed_cls is None:
        logger.warning("%s has %d filter bands but bci has no fix for it: MOABB evaluations "
                       "will hand its pipelines the first band only.",
                       type(paradigm).__name__, n_bands)
        return paradigm
    out = fixed_cls.__new__(fixed_cls)
    out.__dict__.update(vars(copied))
    return out
