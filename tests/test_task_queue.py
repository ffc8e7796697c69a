"""Background work is queued after the transaction commits, and never for a rollback."""

from __future__ import annotations

import pytest
from django.db import transaction
from django_q.brokers import get_broker

from console.on_commit import enqueue_after_commit


@pytest.fixture
def broker(db):
    broker = get_broker()
    broker.purge_queue()
    yield broker
    broker.purge_queue()


def test_a_task_is_queued_only_when_the_transaction_commits(
    broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        enqueue_after_commit("math.floor", 1.5, task_name="floor")
        assert broker.queue_size() == 0, "not before the commit"
    assert len(callbacks) == 1
    callbacks[0]()
    assert broker.queue_size() == 1


def test_a_rolled_back_transaction_queues_nothing(broker, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        enqueue_after_commit("math.floor", 1.5)
        raise RuntimeError("the service failed")
    assert callbacks == []
    assert broker.queue_size() == 0
