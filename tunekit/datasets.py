"""Small real data sets for the studies, and the multi-hot IMDB of Listing 5.13.

Everything here runs offline. :func:`load` returns the data sets that ship
with scikit-learn; :func:`load_imdb` reads Keras's IMDB file only when it is
already on disk (it never downloads); :func:`synthetic_imdb` generates a
stand-in with the same shape and the same overfitting behaviour, for machines
without the file and for tests.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import numpy as np

from tunekit.exceptions import TunekitError

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "imdb_path",
    "load",
    "load_imdb",
    "multi_hot",
    "synthetic_imdb",
]

DATASETS = ("breast_cancer", "digits", "wine", "diabetes")
CLASSIFICATION = ("breast_cancer", "digits", "wine")


class DatasetNotFoundError(TunekitError, FileNotFoundError):
    """A data file is not on this machine, and tunekit does not download at run time."""


def _subsample(X, y, n_samples, *, stratify, random_state):
    if n_samples is None or n_samples >= len(y):
        return X, y
    from sklearn.model_selection import train_test_split

    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise TypeError(f"n_samples must be a positive integer or None, got {n_samples!r}")
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got n_samples={n_samples}")
    labels = y if stratify and n_samples >= len(np.unique(y)) else None
    X, _, y, _ = train_test_split(
        X, y, train_size=int(n_samples), stratify=labels, random_state=random_state
    )
    return X, y


def load(
    name: str, *, n_samples: int | None = None, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Load one of scikit-learn's bundled data sets, ready for a network.

    Parameters
    ----------
    name : {"breast_cancer", "digits", "wine", "diabetes"}
        The data set. ``digits`` pixels are divided by 16 (to ``[0, 1]``);
        the ``diabetes`` target (disease progression, 25 to 346) is divided
        by 100 so that a network trains at default learning rates (R² is
        unchanged). Other features are returned as they are: scale them in a
        pipeline (``StandardScaler``), inside cross-validation.
    n_samples : int or None, default=None
        Keep a random subset of this many samples (stratified for the
        classification sets); ``None`` keeps all.
    random_state : int or None, default=0
        Seeds the subset.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float32
    y : ndarray of shape (n_samples,)
        Integer class labels, or a float32 target for ``diabetes``.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`DATASETS`.

    Examples
    --------
    >>> from tunekit import datasets
    >>> X, y = datasets.load("wine", n_samples=60)
    >>> X.shape, X.dtype.name
    ((60, 13), 'float32')
    """
    from sklearn import datasets as skd

    if name not in DATASETS:
        close = difflib.get_close_matches(str(name), DATASETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"name must be one of {list(DATASETS)}, got {name!r}.{hint}")
    X, y = getattr(skd, f"load_{name}")(return_X_y=True)
    X = np.asarray(X, dtype=np.float32)
    if name == "digits":
        X /= 16.0
    if name == "diabetes":
        y = (np.asarray(y) / 100.0).astype(np.float32)
    return _subsample(X, y, n_samples, stratify=name in CLASSIFICATION, random_state=random_state)


def multi_hot(sequences, num_words: int) -> np.ndarray:
    """Turn lists of word indices into multi-hot rows (the book's ``vectorize_sequences``).

    Parameters
    ----------
    sequences : sequence of sequences of int
        Word indices per review.
    num_words : int
        Vocabulary size: the width of the result. Indices ``>= num_words``
        are ignored.

    Returns
    -------
    X : ndarray of shape (len(sequences), num_words), dtype float32
        ``X[i, j] = 1`` when word ``j`` occurs in review ``i``.

    Examples
    --------
    >>> from tunekit.datasets import multi_hot
    >>> multi_hot([[1, 3], [2, 2, 9]], num_words=4)
    array([[0., 1., 0., 1.],
           [0., 0., 1., 0.]], dtype=float32)
    """
    out = np.zeros((len(sequences), int(num_words)), dtype=np.float32)
    for i, sequence in enumerate(sequences):
        words = np.asarray(sequence, dtype=np.int64)
        out[i, words[(words >= 0) & (words < num_words)]] = 1.0
    return out


def synthetic_imdb(
    n_samples: int = 2000, *, num_words: int = 10_000, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A generated stand-in for the multi-hot IMDB reviews of Listing 5.13.

    Each "review" draws about 230 words from a Zipf vocabulary of
    ``num_words`` words; a few hundred mid-frequency words carry sentiment
    (positive or negative, with some mixing), and 5% of the labels are
    flipped. As with the real data, a ``Dense(16)-Dense(16)`` network reaches
    a near-perfect training accuracy within a few epochs while its validation
    loss turns up: the picture Listing 5.13's L2 penalty improves.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of reviews, half of each label.
    num_words : int, default=10_000
        Vocabulary size (the width of ``X``).
    random_state : int or None, default=0
        Seeds the generator.

    Returns
    -------
    X : ndarray of shape (n_samples, num_words), dtype float32
        Multi-hot rows.
    y : ndarray of shape (n_samples,), dtype int64
        0 (negative) or 1 (positive).
    """
    if num_words < 100:
        raise ValueError(f"num_words must be >= 100, got num_words={num_words}")
    rng = np.random.default_rng(random_state)
    ranks = np.arange(4, num_words)  # 0, 1, 2, 3 are Keras's pad/start/oov/unused codes
    freq = 1.0 / (ranks - 3 + 10.0)
    freq /= freq.sum()
    pool = rng.permutation(ranks[(ranks >= 50) & (ranks < max(100, num_words // 3))])
    n_sent = max(10, min(200, len(pool) // 2))
    positive, negative = pool[:n_sent], pool[n_sent : 2 * n_sent]
    y = rng.permutation(np.arange(n_samples) % 2)
    lengths = np.clip(rng.lognormal(np.log(200), 0.5, n_samples), 20, 800).astype(int)
    X = np.zeros((n_samples, num_words), dtype=np.float32)
    X[:, 1] = 1.0  # the start-of-review code, as in keras.datasets.imdb
    for i in range(n_samples):
        words = rng.choice(ranks, size=lengths[i], p=freq)
        n_mood = rng.binomial(lengths[i], 0.08)
        own, other = (positive, negative) if y[i] else (negative, positive)
        mixed = rng.random(n_mood) < 0.8
        mood = np.where(mixed, rng.choice(own, n_mood), rng.choice(other, n_mood))
        X[i, words] = 1.0
        X[i, mood] = 1.0
    flip = rng.random(n_samples) < 0.05
    y = np.where(flip, 1 - y, y).astype(np.int64)
    return X, y


def imdb_path() -> Path:
    """Where Keras keeps ``imdb.npz``: ``$KERAS_HOME/datasets`` (default ``~/.keras``).

    When that directory is not writable Keras uses ``/tmp/.keras/datasets``
    instead; this returns whichever of the two holds the file (the first when
    neither does).
    """
    home = Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser())
    candidates = [home / "datasets" / "imdb.npz", Path("/tmp/.keras/datasets/imdb.npz")]
    return next((p for p in candidates if p.is_file()), candidates[0])


def load_imdb(
    *, num_words: int = 10_000, n_samples: int | None = None, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The IMDB training reviews as multi-hot rows, from Keras's file already on disk.

    Parameters
    ----------
    num_words : int, default=10_000
        Keep the ``num_words`` most frequent words (Listing 5.13 uses 10,000).
    n_samples : int or None, default=None
        Keep a stratified random subset of the 25,000 training reviews.
    random_state : int or None, default=0
        Seeds the subset.

    Returns
    -------
    X : ndarray of shape (n_samples, num_words), dtype float32
    y : ndarray of shape (n_samples,)

    Raises
    ------
    DatasetNotFoundError
        When ``imdb.npz`` is not in Keras's cache: nothing is downloaded.
    """
    path = imdb_path()
    if not path.is_file():
        raise DatasetNotFoundError(
            f"the IMDB data is not on this machine: no file {str(path)!r}, and tunekit never "
            "downloads at run time. On a machine with network access run "
            '`python -c "import keras; keras.datasets.imdb.load_data()"` and copy '
            "~/.keras/datasets/imdb.npz here, or use the generated stand-in (--synthetic)."
        )
    import keras

    (x_train, y_train), _ = keras.datasets.imdb.load_data(num_words=num_words)
    y_train = np.asarray(y_train)
    index = np.arange(len(y_train))
    index, _ = _subsample(index, y_train, n_samples, stratify=True, random_state=random_state)
    return multi_hot([x_train[i] for i in index], num_words), y_train[index]
