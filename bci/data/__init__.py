"""Data: MOABB loaders, synthetic MOABB-style datasets, preprocessing and alignment.

Attributes are imported on first use (``lazy_loader``), so ``import bci.data`` stays cheap.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "loaders": ["load_data", "load_epochs", "get_dataset", "get_paradigm", "list_datasets",
                "check_class_count"],
    "synthetic": ["make_motor_imagery", "make_ssvep", "make_continuous_eeg",
                  "make_onset_trials", "make_multicontact_ieeg"],
    "datasets": ["SyntheticMotorImagery", "SyntheticSSVEP"],
    "bids": ["BIDSDataset"],
    "mne_sample": ["MNESample"],
    "openneuro_ieeg": ["Berezutskaya2022", "fetch_openneuro"],
    "meg": ["make_meg_trials"],
    "chbmit": ["CHBMIT", "common_eeg_channels", "load_chbmit_subject", "read_chbmit_channels",
               "read_chbmit_summary", "seizure_intervals", "split_files"],
    "dreams": ["DreamsExcerpt", "load_dreams_spindles", "merge_scorings"],
    "preprocessing": ["bandpass", "notch", "resample", "rereference"],
    "alignment": ["EuclideanAlignment"],
    "datamodule": ["EEGDataModule", "split_train_val"],
    "pretraining": ["NEUROGPT_CHANNELS", "ChannelMapping", "ChunkSpec", "map_channels",
                    "prepare_raw"],
    "pretraining_corpus": ["EEGBCIRecordings", "MoabbRecordings", "PretrainingCorpus",
                           "RawRecordings", "Recording", "channel_report", "pretraining_source"],
    "pretraining_datamodule": ["ChunkDataset", "ChunkSampler", "PretrainingDataModule",
                               "split_recordings"],
    "reaching": ["ReachingData", "load_center_out", "load_primate_reaching", "make_reaching",
                 "neurobench_split", "pad_trials", "make_windows"],
    "seizure": ["load_bonn", "make_seizure_eeg", "make_seizure_stream", "sliding_windows",
                "seizure_overlap_s", "subsample_segments", "split_segments", "segment_windows",
                "prepare_recording", "choose_training_windows", "windows_at",
                "SeizureSegments", "SeizureStream"],
    "seizure_windows": ["SeizureWindows", "prepare_bonn_windows", "prepare_chbmit_windows"],
})
