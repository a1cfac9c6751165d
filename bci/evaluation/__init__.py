"""Evaluation: MOABB evaluations behind :func:`benchmark`, result tables and plots."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "benchmarks": ["benchmark", "summarize", "format_table", "plot_scores", "write_results"],
    "seizure_metrics": ["seizure_metrics", "SeizureMetrics", "alarm_events",
                        "consecutive_decisions"],
})
