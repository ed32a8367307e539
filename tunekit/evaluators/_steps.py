"""A pipeline's last step: what the evaluators, their diagnosis and the strategies look into."""

__all__ = ["final_estimator"]


def final_estimator(estimator):
    """The last step of a pipeline (recursively), or the estimator itself."""
    while hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator
