"""Curated search spaces."""

from __future__ import annotations

from tunekit.space import Choice, Float, Int, Space

__all__ = ["overfitting"]


def overfitting(*, prefix: str = "", label_smoothing: bool = True) -> Space:
    """The overfitting lecture's techniques as one search space for :func:`tunekit.builders.mlp`.

    Each dimension is one of the techniques that delay overfitting, with a
    range chosen so that its low end is "off" (or nearly) and its high end is
    as strong as is still useful on small tabular problems:

    ``model__l2`` : Float(1e-6, 1e-1, log=True)
        Weight penalties act multiplicatively, hence a log scale. 1e-6 is
        practically no penalty; the lecture's Listing 5.13 uses 0.002; above
        0.1 a Dense(16) network is pushed to a constant output.
    ``model__l1`` : Float(1e-7, 1e-2, log=True)
        L1 sums absolute values and so bites harder than L2 at the same
        strength; its range sits one decade lower.
    ``model__dropout`` : Float(0.0, 0.6)
        0 is off; the lecture's "typical" 0.5 is inside; past ~0.6 small
        layers lose most of their signal.
    ``model__noise`` : Float(0.0, 0.3)
        Standard deviation of Gaussian noise on the inputs, for standardized
        features (unit variance): 0.3 is a strong jitter.
    ``model__activation_noise`` : Float(0.0, 0.3)
        The same, injected into the hidden activations.
    ``model__label_smoothing`` : Float(0.0, 0.2)
        Noise on the labels; beyond 0.2 it mostly blurs the decision.
        Classifiers only: pass ``label_smoothing=False`` for regression.
    ``batch_size`` : Choice([16, 32, 64, 128, 256, 512])
        Powers of two from 16 to 512, the lecture's range (Goodfellow et al.):
        small batches regularize, large ones are faster.
    ``epochs`` : Int(5, 100, log=True)
        Training length: early stopping from the other side. Log scale since
        the difference between 5 and 10 epochs matters more than 90 and 95.

    Parameters
    ----------
    prefix : str, default=""
        Prepended to every name, e.g. ``"kerasclassifier__"`` for a pipeline.
    label_smoothing : bool, default=True
        Include ``model__label_smoothing`` (classifiers only).

    Returns
    -------
    space : Space

    Examples
    --------
    >>> import tunekit as tk
    >>> sorted(tk.spaces.overfitting())[:3]
    ['batch_size', 'epochs', 'model__activation_noise']
    """
    dims = {
        "model__l2": Float(1e-6, 1e-1, log=True),
        "model__l1": Float(1e-7, 1e-2, log=True),
        "model__dropout": Float(0.0, 0.6),
        "model__noise": Float(0.0, 0.3),
        "model__activation_noise": Float(0.0, 0.3),
        "model__label_smoothing": Float(0.0, 0.2),
        "batch_size": Choice([16, 32, 64, 128, 256, 512]),
        "epochs": Int(5, 100, log=True),
    }
    if not label_smoothing:
        del dims["model__label_smoothing"]
    return Space(dims).prefixed(prefix) if prefix else Space(dims)
