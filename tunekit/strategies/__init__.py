"""Search strategies: each proposes candidates; scikit-learn-schema results.

One module per strategy. This package is the only place in tunekit that
imports scikit-learn's private ``model_selection._search``.
"""
