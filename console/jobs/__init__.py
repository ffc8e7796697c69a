"""The one job machinery for background work with progress.

A kind registers what it does with a shard (:class:`JobKind`); :func:`job_create` makes a job of
it; workers lease shards, run them in slices and checkpoint per batch (:class:`ShardRun`); one
progress page in the admin shows every job. See ``console/jobs/services.py``.
"""

from console.jobs.registry import JobKind, job_kind, job_kind_label, job_kinds, register_job_kind
from console.jobs.runner import LeaseLost, PlatformUnavailable, ShardRun, StopReason

__all__ = [
    "JobKind",
    "LeaseLost",
    "PlatformUnavailable",
    "ShardRun",
    "StopReason",
    "job_kind",
    "job_kind_label",
    "job_kinds",
    "register_job_kind",
]
