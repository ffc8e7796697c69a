"""Fixtures for WeCom customer-tagging jobs: the demo WeCom app pointed at the sandbox."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from console.jobs.services import job_run_shard
from console.models import Job, JobStatus, ShardStatus
from tagging.customers.audience import customer_audience_from_file, customer_read_job
from tagging.customers.models import CustomerAudience
from wecom.clients import WeComClient
from wecom.connections import client_for
from wecom.models import WeComApp
from wecom.sandbox import DEMO

CORP = DEMO.wecom_corp_id
MARK_TAG = "/cgi-bin/externalcontact/mark_tag"


@pytest.fixture
def app(db, sandbox) -> WeComApp:
    created = WeComApp.objects.create(
        name="演示企业",
        corp_id=DEMO.wecom_corp_id,
        secret=DEMO.wecom_secret,
        agent_id=DEMO.wecom_agent_id,
        rate_limit=10_000,
    )
    return WeComApp.objects.get(pk=created.pk)


@pytest.fixture
def wecom(app) -> WeComClient:
    return client_for(app)


@pytest.fixture
def strategy_tags(wecom) -> dict[int, list[str]]:
    """The demo's strategy tag ids, by strategy (1 and 2)."""
    return {
        strategy_id: [
            t.id for g in wecom.strategy_tag_list(strategy_id=strategy_id) for t in g.tags
        ]
        for strategy_id in (1, 2)
    }


# Refusals of a token another test process cached for its own sandbox (the PostgreSQL + Redis
# run shares one cache between xdist workers): the client renews and sends again; not counted.
TOKEN_REFUSALS = (40001, 40014, 42001)


def calls(sandbox, endpoint: str = MARK_TAG) -> int:
    """Calls of ``endpoint`` the sandbox answered, those refused for a stale token left out."""
    return sum(
        1
        for request in list(sandbox.requests)
        if request.endpoint == endpoint and request.errcode not in TOKEN_REFUSALS
    )


def csv_file(rows: list[str]) -> tuple[io.BytesIO, int]:
    data = ("\n".join(rows) + "\n").encode("utf-8")
    return io.BytesIO(data), len(data)


@pytest.fixture
def audience_from_csv(app, editor) -> Callable[..., CustomerAudience]:
    def make(rows: list[str], name: str = "customers.csv") -> CustomerAudience:
        stream, size = csv_file(rows)
        return customer_audience_from_file(
            app=app, stream=stream, name=name, size=size, user=editor
        )

    return make


def read_uploaded(audience: CustomerAudience) -> Job:
    """Run the job that reads an uploaded list, as a worker would; the audience refreshed."""
    job = drain(customer_read_job(audience))
    audience.refresh_from_db()
    return job


def drain(job: Job, *, rounds: int = 50) -> Job:
    """Run every shard slice by slice, as workers would, until no shard is left to run."""
    for _round in range(rounds):
        pending = list(job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)))
        job.refresh_from_db()
        if not pending or job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            return job
        for shard in pending:
            job_run_shard(shard_id=shard.pk, worker="test")
    raise AssertionError("the job did not finish")
