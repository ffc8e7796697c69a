"""Platform clients for stored credentials: the only place that reveals a secret to a client."""

from __future__ import annotations

from functools import singledispatch
from typing import Any

from wecom.clients import ChatbotClient, OfficialAccountClient, WeComClient
from wecom.clients.transport import PlatformClient
from wecom.models import ChatbotBot, OfficialAccount, WeComApp


@singledispatch
def client_for(credential: Any) -> PlatformClient:
    raise TypeError(f"No platform client for {type(credential).__name__}")


@client_for.register
def _(credential: WeComApp) -> WeComClient:
    return WeComClient(
        corp_id=credential.corp_id,
        secret=credential.secret.reveal(),
        rate_limit=credential.rate_limit,
    )


@client_for.register
def _(credential: OfficialAccount) -> OfficialAccountClient:
    return OfficialAccountClient(
        appid=credential.appid,
        secret=credential.secret.reveal(),
        rate_limit=credential.rate_limit,
    )


@client_for.register
def _(credential: ChatbotBot) -> ChatbotClient:
    return ChatbotClient(
        appid=credential.appid,
        token=credential.token.reveal(),
        encoding_aes_key=credential.encoding_aes_key.reveal(),
        rate_limit=credential.rate_limit,
    )
