"""A scikit-learn classifier around a deep decoder and its Lightning training: the MOABB bridge.

:class:`DeepClassifier` takes epochs ``(n_epochs, n_chans, n_times)`` like every pipeline of
:mod:`bci.pipelines.registry`, so networks run inside MOABB evaluations, ``bci benchmark`` and
decoder files next to the Riemannian pipelines. ``fit`` scales the epochs, holds out a stratified
validation split for early stopping, builds the network from :data:`bci.models.registry.MODELS`
and trains it with :func:`bci.models.training.train_model`.

This module imports Lightning only inside :meth:`DeepClassifier.fit`: a fitted classifier (e.g.
loaded from a decoder file by the real-time loop) predicts with torch alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .._checks import check_option, validate_epochs
from .._logging import logger

__all__ = ["SCALINGS", "DeepClassifier"]

#: Input scalings of :class:`DeepClassifier` (see its ``scaling`` parameter).
SCALINGS = ("channel", "epoch", "sample", "none")
_EPS = 1e-12


def scale_epochs(X: np.ndarray, scaling: str, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None) -> np.ndarray:
    """Scale epochs ``(n_epochs, n_chans, n_times)`` as :class:`DeepClassifier` does.

    Parameters
    ----------
    X : ndarray, shape (n_epochs, n_chans, n_times)
        Epochs (any unit); not modified.
    scaling : "channel" | "epoch" | "sample" | "none"
        See :class:`DeepClassifier`.
    mean, std : ndarray, shape (n_chans,) | None
        Per-channel statistics of the training epochs (``"channel"`` only).

    Returns
    -------
    Xs : ndarray of float32, same shape as ``X``
    """
    if scaling == "channel":
        out = (X - mean[:, None]) / std[:, None]
    elif scaling == "epoch":  # each channel of each epoch to zero mean, unit variance
        out = (X - X.mean(-1, keepdims=True)) / np.maximum(X.std(-1, keepdims=True), _EPS)
    elif scaling == "sample":  # each time sample across channels (MOABB's StandardScaler_Epoch)
        out = (X - X.mean(1, keepdims=True)) / np.maximum(X.std(1, keepdims=True), _EPS)
    else:
        out = X
    return np.asarray(out, dtype=np.float32)


class DeepClassifier(ClassifierMixin, BaseEstimator):
    """Scikit-learn classifier that trains a registered deep decoder with Lightning.

    Parameters
    ----------
    model : str
        A key of :data:`bci.models.registry.MODELS`: ``"EEGNeX"``, ``"EEGNet"``,
        ``"ShallowConvNet"``.
    model_params : dict | None
        Architecture keywords of the model (e.g. ``{"drop_prob": 0.25}``).
    sfreq : float | None
        Sampling rate (Hz) of the epochs, stored in the model's config.
    scaling : "channel" | "epoch" | "sample" | "none"
        Input scaling, so that volts (MNE, ~1e-5) and microvolts (MOABB arrays) train alike:
        ``"channel"`` (default) subtracts each channel's mean and divides by its standard
        deviation over all training epochs and samples (kept in ``scale_mean_``/``scale_std_``,
        applied unchanged at prediction; relative power between epochs, the motor-imagery
        feature, is preserved); ``"epoch"`` standardises each channel of each epoch on its own;
        ``"sample"`` standardises each time sample across channels (what MOABB's
        ``StandardScaler_Epoch`` does before its Keras networks); ``"none"`` uses the input as is.
    max_epochs : int
        Upper bound on training epochs (and length of the cosine schedule).
    batch_size : int
        Epochs per training batch.
    lr : float
        Peak learning rate (AdamW).
    weight_decay : float
        AdamW weight decay.
    scheduler : "cosine" | "plateau" | "none"
        Learning-rate schedule (see :class:`bci.models.training.DecoderModule`).
    patience : int | None
        Early stopping: epochs without a lower validation loss; None trains ``max_epochs``.
    val_fraction : float
        Fraction of the training epochs held out (stratified) for early stopping and for
        choosing the restored epoch; 0 trains on all of them for ``max_epochs``.
    gradient_clip_val : float | None
        Gradient-norm clipping.
    label_smoothing : float
        Label smoothing of the cross-entropy.
    recalibrate_batch_norm : bool
        After training, set the BatchNorm running statistics to the exact statistics of the
        final weights over the training epochs (see
        :func:`bci.models.training.recalibrate_batch_norm_stats`). Needed with Keras'
        BatchNorm momentum (EEGNeX, EEGNet) on small data sets.
    augmentation : dict | None
        Keywords of :class:`~bci.models.augmentation.EpochAugmentation` (random time shift,
        gain, noise, channel dropout, segment recombination of the training batches), e.g.
        ``{"time_shift": 0.1, "recombine": 4}``; None: no augmentation.
    seed : int | None
        Seed of the weight initialisation, the validation split, the batch order and dropout
        (each from its own generator or a forked torch RNG; global random states are left
        alone). The same seed on the same data and machine gives the same predictions.
    accelerator, devices, strategy, num_nodes
        Lightning :class:`~lightning.pytorch.Trainer` flags (CPU by default; e.g.
        ``accelerator="gpu", devices=2, strategy="ddp"``).
    n_threads : int | None
        Torch CPU threads during fit and predict (restored afterwards); None keeps torch's.
    progress_bar : bool
        Show Lightning's progress bar.
    log_dir : str | None
        Folder for Lightning's CSV logger (``metrics.csv``); no log files when None.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        Class labels, in the order of :meth:`predict_proba`'s columns.
    model_ : torch.nn.Module
        The trained network (best validation epoch's weights), in eval mode.
    scale_mean_, scale_std_ : ndarray, shape (n_chans,) | None
        Per-channel statistics of ``scaling="channel"``.
    history_ : list of dict
        Per-epoch ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``.
    best_epoch_ : int | None
        Epoch whose weights were kept.
    n_epochs_ : int
        Epochs trained.
    n_features_in_ : int
        Number of channels.
    n_times_ : int
        Samples per epoch.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((20, 4, 128)), np.array(["left", "right"] * 10)
    >>> clf = DeepClassifier("EEGNet", max_epochs=2, batch_size=8).fit(X, y)
    >>> clf.predict_proba(X).shape
    (20, 2)
    """

    def __init__(self, model: str = "EEGNeX", *, model_params: dict | None = None,
                 sfreq: float | None = None,
                 scaling: Literal["channel", "epoch", "sample", "none"] = "channel",
                 max_epochs: int = 60, batch_size: int = 16, lr: float = 1e-3,
                 weight_decay: float = 1e-2,
                 scheduler: Literal["cosine", "plateau", "none"] = "cosine",
                 patience: int | None = None, val_fraction: float = 0.0,
                 gradient_clip_val: float | None = 1.0, label_smoothing: float = 0.0,
                 recalibrate_batch_norm: bool = True, augmentation: dict | None = None,
                 seed: int | None = 42,
                 accelerator: str = "cpu", devices: int | str = 1,
                 strategy: str = "auto", num_nodes: int = 1, n_threads: int | None = None,
                 progress_bar: bool = False, log_dir: str | None = None) -> None:
        self.model = model
        self.model_params = model_params
        self.sfreq = sfreq
        self.scaling = scaling
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.scheduler = scheduler
        self.patience = patience
        self.val_fraction = val_fraction
        self.gradient_clip_val = gradient_clip_val
        self.label_smoothing = label_smoothing
        self.recalibrate_batch_norm = recalibrate_batch_norm
        self.augmentation = augmentation
        self.seed = seed
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.num_nodes = num_nodes
        self.n_threads = n_threads
        self.progress_bar = progress_bar
        self.log_dir = log_dir

    def __sklearn_tags__(self):
        """Declare 3-D input, and non-deterministic training when ``seed`` is None."""
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.seed is None
        return tags

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X, y) -> DeepClassifier:
        """Train the network on epochs ``X`` ``(n_epochs, n_chans, n_times)`` and labels ``y``.

        Returns
        -------
        self : DeepClassifier
        """
        import torch
        from sklearn.preprocessing import LabelEncoder
        from sklearn.utils.multiclass import check_classification_targets

        from ..data.datamodule import EEGDataModule
        from ._threads import torch_threads
        from .registry import MODELS, get_model
        from .training import train_model

        check_option("model", self.model, MODELS)
        check_option("scaling", self.scaling, SCALINGS)
        X = validate_epochs(self, X, reset=True)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is "
                             "None; pass one label per epoch.")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must be 1-D with one label per epoch ({len(X)}), got shape "
                             f"{y.shape}.")
        if y.dtype.kind in "fc" and not np.isfinite(y).all():
            raise ValueError(f"y contains {int((~np.isfinite(y)).sum())} NaN or infinite labels, "
                             f"first at epoch {int(np.flatnonzero(~np.isfinite(y))[0])}; drop "
                             "those epochs.")
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            only = np.asarray(encoder.classes_[0]).item()
            raise ValueError(f"y has a single class ({only!r}): one class cannot be classified, "
                             "a classifier needs at least 2.")
        self.classes_ = encoder.classes_
        self.n_times_ = X.shape[2]
        if self.scaling == "channel":
            self.scale_mean_ = X.mean(axis=(0, 2))
            self.scale_std_ = np.maximum(X.std(axis=(0, 2)), _EPS)
        else:
            self.scale_mean_ = self.scale_std_ = None
        Xs = scale_epochs(X, self.scaling, self.scale_mean_, self.scale_std_)
        n_chans, n_times = X.shape[1:]
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(int(self.seed))
            network = get_model(self.model, n_chans, len(self.classes_), n_times,
                                sfreq=self.sfreq, **(self.model_params or {}))
        data = EEGDataModule(Xs, encoder.transform(y), val_fraction=self.val_fraction,
                             batch_size=self.batch_size, random_state=self.seed)
        logger.info("Training %s on %d epochs of %d channels x %d samples (%d classes)",
                    self.model, len(X), n_chans, n_times, len(self.classes_))
        with torch_threads(self.n_threads):
            result = train_model(
                network, data, max_epochs=self.max_epochs, patience=self.patience, lr=self.lr,
                weight_decay=self.weight_decay, scheduler=self.scheduler,
                gradient_clip_val=self.gradient_clip_val, label_smoothing=self.label_smoothing,
                recalibrate_batch_norm=self.recalibrate_batch_norm,
                augmentation=self.augmentation, seed=self.seed,
                accelerator=self.accelerator, devices=self.devices,
                strategy=self.strategy, num_nodes=self.num_nodes, log_dir=self.log_dir,
                progress_bar=self.progress_bar)
        self.model_ = result.model
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.n_epochs_ = result.n_epochs
        return self

    # -- prediction --------------------------------------------------------------------------
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of the network's logits).

        Parameters
        ----------
        X : array, shape (n_epochs, n_chans, n_times)
            Epochs in the unit of the training epochs.

        Returns
        -------
        proba : ndarray, shape (n_epochs, n_classes)
            Columns follow :attr:`classes_`.
        """
        from .inference import predict_proba

        check_is_fitted(self, "model_")
        X = validate_epochs(self, X, reset=False)
        if X.shape[2] != self.n_times_:
            raise ValueError(f"X has {X.shape[2]} samples per epoch; this classifier was "
                             f"trained on n_times={self.n_times_}.")
        if not len(X):
            return np.empty((0, len(self.classes_)))
        Xs = scale_epochs(X, self.scaling, self.scale_mean_, self.scale_std_)
        return predict_proba(self.model_, Xs, n_threads=self.n_threads).astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """Most probable class of each epoch.

        Returns
        -------
        y : ndarray, shape (n_epochs,)
            Labels from :attr:`classes_`.
        """
        check_is_fitted(self, "model_")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    # -- decoder files -----------------------------------------------------------------------
    def _network_state(self) -> tuple[dict[str, Any], dict]:
        """Return (JSON-serialisable description, ``state_dict``) of the fitted classifier.

        Decoder files store these; :meth:`_from_network_state` rebuilds the classifier without
        Lightning.
        """
        check_is_fitted(self, "model_")
        params = self.get_params()
        params["log_dir"] = None if params["log_dir"] is None else str(params["log_dir"])
        meta = {
            "model": self.model,
            "config": self.model_.get_config(),
            "params": params,
            "classes": self.classes_.tolist(),
            "n_features_in": int(self.n_features_in_),
            "n_times": int(self.n_times_),
            "scale_mean": None if self.scale_mean_ is None else self.scale_mean_.tolist(),
            "scale_std": None if self.scale_std_ is None else self.scale_std_.tolist(),
            "best_epoch": self.best_epoch_,
            "n_epochs": self.n_epochs_,
        }
        return meta, {k: v.detach().cpu() for k, v in self.model_.state_dict().items()}

    @classmethod
    def _from_network_state(cls, meta: dict[str, Any], state_dict: dict) -> DeepClassifier:
        from .registry import MODELS

        check_option("model", meta["model"], MODELS)
        clf = cls(**meta["params"])
        network = MODELS[meta["model"]].from_config(meta["config"])
        network.load_state_dict(state_dict, strict=True)
        clf.model_ = network.eval()
        clf.classes_ = np.asarray(meta["classes"])
        clf.n_features_in_ = int(meta["n_features_in"])
        clf.n_times_ = int(meta["n_times"])
        for key in ("scale_mean", "scale_std"):
            value = meta[key]
            setattr(clf, key + "_", None if value is None else np.asarray(value, dtype=float))
        clf.history_ = []
        clf.best_epoch_ = meta.get("best_epoch")
        clf.n_epochs_ = meta.get("n_epochs", 0)
        return clf


def plot_learning_curves(history: list[dict[str, float]], fname: str | Path | None = None,
                         *, title: str = ""):
    """Plot training/validation loss and accuracy per epoch (``DeepClassifier.history_``).

    Parameters
    ----------
    history : list of dict
        Rows with ``epoch`` and any of ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``.
    fname : str | Path | None
        Save the figure there (PNG) when given.
    title : str
        Figure title.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib

    if fname is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("history is empty: fit the classifier first.")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        for stage in ("train", "val"):
            key = f"{stage}_{metric}"
            values = [row.get(key, np.nan) for row in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, label=stage)
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "cross-entropy", "acc": "accuracy"}[metric])
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    if title:
        fig.suptitle(title)
    if fname is not None:
        fig.savefig(fname, dpi=110)
    return fig
