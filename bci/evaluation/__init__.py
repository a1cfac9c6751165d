"""Evaluation: MOABB benchmarks, seizure and event metrics, latency statistics.

Attributes are imported on first use (``lazy_loader``).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "benchmarks": ["benchmark", "summarize", "format_table", "plot_scores", "write_results"],
    "seizure_metrics": ["seizure_metrics", "SeizureMetrics", "alarm_events",
                        "consecutive_decisions", "pool_seizure_metrics", "binary_scores",
                        "segment_scores", "StreamTrace", "StreamScores", "predict_stream",
                        "score_traces", "plot_traces"],
    "events": ["EventCounts", "match_events", "score_detections", "pool_event_counts",
               "event_rates", "choose_leave_one_out", "detection_agreement",
               "plot_detections"],
    "latency": ["latency_stats"],
    "online": ["wolpaw_bits", "itr_bits_per_min", "trial_metrics", "summarize_online",
               "format_online_table", "plot_accuracy_curves"],
})
