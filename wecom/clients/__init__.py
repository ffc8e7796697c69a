"""Clients of the three Tencent platforms. Nothing else in the console makes HTTP calls to them."""

from wecom.clients.chatbot import ChatbotClient
from wecom.clients.errors import (
    PlatformAPIError,
    PlatformCredentialError,
    PlatformError,
    PlatformInputError,
    PlatformTransportError,
)
from wecom.clients.official_account import OfficialAccountClient
from wecom.clients.wecom import WeComClient

__all__ = [
    "ChatbotClient",
    "OfficialAccountClient",
    "PlatformAPIError",
    "PlatformCredentialError",
    "PlatformError",
    "PlatformInputError",
    "PlatformTransportError",
    "WeComClient",
]
