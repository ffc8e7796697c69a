"""Settings of a bench/job_faults.py run: the test settings, the sandbox's address and the
private PostgreSQL / Redis of the run from the environment, production timings otherwise
(except those the run's options shorten, named in its output)."""

import os

from tests.settings import *  # noqa: F403

WECHAT_API_BASE = os.environ["FAULTS_API_BASE"] + "/wechat"
CHATBOT_API_BASE = os.environ["FAULTS_API_BASE"] + "/chatbot"
WECOM_API_BASE = os.environ["FAULTS_API_BASE"] + "/wecom"

BULK_SHARD_SIZE = int(os.environ.get("FAULTS_SHARD_SIZE", "20000"))
JOBS_SLICE_SECONDS = int(os.environ.get("JOBS_SLICE_SECONDS", "120"))
Q_CLUSTER = {
    **Q_CLUSTER,  # noqa: F405
    "name": os.environ["Q_CLUSTER_NAME"],
    "workers": 2,
    "poll": 0.2,
    "recycle": 10_000,
}
