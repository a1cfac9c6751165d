"""Real time: sources, stream, causal processing, online loop, policies, safety, recording.

Also the ring buffer and the session reports.

Only :mod:`bci.realtime.lsl` imports pylsl; everything else runs (and is tested) on replayed
arrays with ``threaded=False`` streams. Stimulator back-ends live in :mod:`bci.hw`.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "buffer": ["RingBuffer"],
    "sources": ["Source", "SourceInfo", "SourceLostError", "ArraySource", "Dejitterer",
                "raw_source"],
    "stream": ["Stream"],
    "events": ["Decision", "StimEvent", "StimRequest", "StreamEvent"],
    "processing": ["CausalFilter", "Envelope", "FunctionProcessor", "HoldNonFinite",
                   "ProcessingChain", "Processor", "Recenter", "Rereference"],
    "policies": ["Policy", "ThresholdPolicy", "OscillationTrigger", "estimate_phase"],
    "safety": ["SafetyGate", "SafetyVerdict"],
    "stimulation": ["Stimulator", "RecordingStimulator"],
    "loop": ["OnlineLoop", "check_decoder"],
    "recording": ["Recorder", "RecordingError", "check_session_dir", "read_session",
                  "read_events", "read_signal", "read_stimuli", "SessionStimuli"],
    "report": ["summarize", "make_session_report", "latency_stats"],
    "session": ["run_session", "parse_policy", "replay_offline"],
    "player": ["Player", "play"],
    "session_export": ["export_session", "export_session_bids", "session_raw",
                       "check_session_complete"],
    "pseudo_online": ["pseudo_online", "PseudoOnlineResults", "write_online_results"],
    "trial_replay": ["ConfidencePolicy", "replay_trials", "replay_rest", "TrialReplay",
                     "find_cues"],
    "lsl": ["LSLSource", "SignalOutlet", "MarkerOutlet", "MarkerInlet", "local_clock",
            "use_loopback_config", "list_streams"],
})
