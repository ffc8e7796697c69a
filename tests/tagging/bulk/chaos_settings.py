"""Settings of a chaos run (tests/tagging/bulk/chaos.py): the test settings, short timings, the
sandbox's address from the environment, a queue and cache prefix of the run's own."""

import os

from tests.settings import *  # noqa: F403

WECHAT_API_BASE = os.environ["CHAOS_API_BASE"] + "/wechat"
CHATBOT_API_BASE = os.environ["CHAOS_API_BASE"] + "/chatbot"
WECOM_API_BASE = os.environ["CHAOS_API_BASE"] + "/wecom"

# Calls give up quickly, so leases can be short and a dead worker's shard comes back soon.
PLATFORM_CONNECT_TIMEOUT = 1.0
PLATFORM_READ_TIMEOUT = 2.0
PLATFORM_RETRY_BUDGET = 3.0
PLATFORM_MAX_ATTEMPTS = 5
PLATFORM_BACKOFF_BASE = 0.02
PLATFORM_BACKOFF_CAP = 0.2
JOBS_LEASE_SECONDS = 8
JOBS_SLICE_SECONDS = 4
JOBS_STATUS_CHECK_SECONDS = 0.5
JOBS_MAX_ERRORS = 50
BULK_SHARD_SIZE = int(os.environ.get("CHAOS_SHARD_SIZE", "400"))

Q_CLUSTER = {
    **Q_CLUSTER,  # noqa: F405
    "name": os.environ["Q_CLUSTER_NAME"],
    "workers": 1,
    "timeout": 30,
    "retry": 60,
    "poll": 0.1,
    "recycle": 10_000,
}
