"""A local emulator of the three Tencent platforms the console talks to, over real HTTP.

WeCom strategy tags, Official Account user tags and the dialogue platform's open API, with their
tokens, limits and errcodes (one module per platform, composed in ``SandboxState``), plus fault
injection and a control API. Standard library only (the
chatbot decryption uses ``chatbot.crypto``); no Django.

    with SandboxServer() as server:          # empty state
        ...
    state = SandboxState(); seed_demo(state)  # or the demo data
    server = SandboxServer(state=state).start()
"""

from .demo import DEMO, seed_demo
from .faults import FaultRule
from .server import RecordedRequest, SandboxServer
from .shared import PlatformError
from .state import SandboxState

__all__ = [
    "DEMO",
    "FaultRule",
    "PlatformError",
    "RecordedRequest",
    "SandboxServer",
    "SandboxState",
    "seed_demo",
]
