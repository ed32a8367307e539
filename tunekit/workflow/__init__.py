"""The lecture's workflow as calls: overfit first, then fit and regularize, resumably.

Step 1 of the overfitting lecture is "get your model to overfit on training
data (always possible)": :func:`overfit_check` says whether a model can, with
the evidence. Steps 2 and 3 run as resumable Optuna studies through
:func:`run_study`, over one of

- a search space (:class:`~tunekit.space.Space`), sampled by Optuna with
  pruning, e.g. :func:`tunekit.spaces.overfitting`;
- a *plan*: named configurations tried in order, such as one technique at a
  time against a baseline (:func:`one_at_a_time`) or growing capacity
  (:func:`capacity_ladder`); each configuration is one Optuna trial;
- training-set sizes: a learning curve (``train_sizes=``).

A study lives in an Optuna storage (an SQLite file by default, PostgreSQL for
several machines): run it again and it continues where it stopped; finished
trials are never re-run. Worker processes that share a storage
(``worker=True``) take the plan's configurations one at a time, so that
together they run each once.

==========================  ===========================================================
module                      job
==========================  ===========================================================
:mod:`.overfit`             step 1: :func:`overfit_check`
:mod:`.plans`               :class:`Config`, :func:`one_at_a_time`, :func:`capacity_ladder`
:mod:`.plan_queue`          a plan's configurations enqueued once in a shared study
:mod:`.fingerprint`         a study's settings, so that experiments are never mixed
:mod:`.learning_curve`      the learning curve's trials
:mod:`.summary`             :class:`StudyOutcome`, :func:`summarize`, the report files
:mod:`.runner`              :func:`run_study`
==========================  ===========================================================
"""

from tunekit.workflow.overfit import OverfitCheck, overfit_check
from tunekit.workflow.plans import Config, capacity_ladder, one_at_a_time, plan_space
from tunekit.workflow.runner import run_study
from tunekit.workflow.summary import StudyOutcome, summarize

__all__ = [
    "Config",
    "OverfitCheck",
    "StudyOutcome",
    "capacity_ladder",
    "one_at_a_time",
    "overfit_check",
    "plan_space",
    "run_study",
    "summarize",
]
