"""django-q2 entry points of the job machinery: load by id, call the service."""

from __future__ import annotations

from console.jobs.services import job_run_shards, jobs_watchdog


def run_shard(shard_id: int) -> str:
    """One slice from the shard on (the job's next shards too, while the slice lasts)."""
    return ", ".join(
        str(outcome.stop_reason or outcome.error or "not claimed")
        for outcome in job_run_shards(shard_id=shard_id)
    )


def watchdog() -> str:
    report = jobs_watchdog()
    return f"resumed {report.resumed_jobs}, requeued {report.requeued_shards}"


def probe() -> str:
    """Queued by the supervisor of ``qcluster`` when the workers have been idle for a while:
    that it runs at all is the answer (console/jobs/supervisor.py)."""
    return "ok"
