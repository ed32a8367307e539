"""Listing 5.13: IMDB sentiment, an L2 penalty of 0.002 against the same network without it.

As in the lecture: reviews as 10,000-word multi-hot vectors, Dense(16)-Dense(16)-Dense(1)
with relu and a sigmoid output, rmsprop, binary cross-entropy, 20 epochs of batches of 512,
validation_split=0.4 (the curves in the report). The reviews come from Keras's IMDB file
when it is already in ~/.keras/datasets (nothing is downloaded; 5,000 reviews by default,
all 25,000 training reviews with --full); --synthetic uses a generated stand-in instead.
"""

import sys

import tunekit as tk
from tunekit import cli, datasets, workflow

SYNTHETIC = "use generated multi-hot reviews instead of Keras's IMDB file"


def main(argv=None) -> int:
    opts = cli.study_options(
        "imdb_listing_5_13", argv, description=__doc__, flags={"--synthetic": SYNTHETIC}
    )
    n, words = opts.pick(300, 5000, None), opts.pick(2000, 10_000, 10_000)
    try:
        if opts.synthetic:
            X, y = datasets.synthetic_imdb(n or 25_000, num_words=words, random_state=opts.seed)
        else:
            X, y = datasets.load_imdb(num_words=words, n_samples=n, random_state=opts.seed)
    except datasets.DatasetNotFoundError as err:
        return cli.fail(opts, err)
    clf = tk.KerasClassifier(
        tk.builders.mlp,
        model__hidden=(16, 16),
        optimizer="rmsprop",
        epochs=opts.pick(2, 20, 20),
        batch_size=512,
        validation_split=0.4,
        metrics=["accuracy"],
        random_state=opts.seed,
    )
    plan = workflow.one_at_a_time(
        {"model__l2": 0.0}, {"Listing 5.13: L2 0.002": {"model__l2": 0.002}}
    )
    return cli.study_main(opts, clf, X, y, plan=plan, cv=opts.pick(2, 3, 3))


if __name__ == "__main__":
    sys.exit(main())
