"""Example: a trainable that brings its own data and model, trained with K-fold.

Reference it in a spec as ``trainable: search_spaces.own_data:train``; add a
``cv: {folds: 5, stratify: true}`` section for 5-fold cross-validation (without
one, a fixed 20% holdout is used). Searchable keys: ``hidden`` and every
toolkit key (``lr``, ``optimizer``, ``dropout``, ``epochs``, ...).
"""

from sklearn.datasets import load_breast_cancer
from torch import nn

from orchestrator.toolkit import TrainSettings, fit_classifier

DEFAULT_HIDDEN = 32  # units in the hidden layer


def train(config):
    data = load_breast_cancer()  # bundled with scikit-learn: 569 tumours, 30 features, 2 classes
    X, y = data.data.astype("float32"), data.target
    hidden = int(config.get("hidden", DEFAULT_HIDDEN))
    dropout = TrainSettings.from_config(config).dropout

    def model():
        return nn.Sequential(
            # Scales the raw features with statistics of the fold's training batches only,
            # so nothing leaks from the validation fold (momentum=None: a running mean).
            nn.BatchNorm1d(X.shape[1], momentum=None),
            nn.Linear(X.shape[1], hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 2),
        )

    fit_classifier(model, X, y, config)  # reports every epoch; return nothing to Ray Tune
