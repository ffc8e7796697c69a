"""The watchdog also runs when a worker starts, so a restart picks stalled jobs up at once."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def watchdog_at_worker_start(**kwargs: Any) -> None:
    from console.jobs.services import jobs_watchdog

    try:
        jobs_watchdog()
    except Exception:
        # The worker must start even when the database is briefly unreachable; the schedule
        # runs the watchdog again within a minute.
        logger.exception("jobs watchdog at worker start failed")
