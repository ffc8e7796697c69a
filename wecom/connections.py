"""The platform client for a stored credential: the only place that reveals a secret to a client.

Every service, job and command builds its client here, typed by the credential it is given, so
none of them needs a wrapper of its own. A stored credential the console cannot use (a secret no
configured key decrypts, an EncodingAESKey that is not one) is a :class:`PlatformCredentialError`:
a :class:`~wecom.clients.PlatformError` like any other, with the sentence to show, and nothing
was sent.
"""

from __future__ import annotations

from typing import overload

from django.utils.translation import gettext_lazy as _

from chatbot.crypto import CryptoError
from console.encryption import CredentialDecryptError
from wecom.clients import ChatbotClient, OfficialAccountClient, WeComClient
from wecom.clients.errors import CHATBOT, WECHAT, WECOM, PlatformCredentialError
from wecom.models import ChatbotBot, OfficialAccount, WeComApp

_UNREADABLE = _(
    "The stored secrets for %(platform)s cannot be decrypted: CREDENTIALS_KEY is not the key "
    "they were saved with. A credential admin can enter them again or restore the old key."
)
_BAD_KEY = _("The stored EncodingAESKey is not valid. A credential admin can enter it again.")


@overload
def client_for(credential: WeComApp) -> WeComClient: ...
@overload
def client_for(credential: OfficialAccount) -> OfficialAccountClient: ...
@overload
def client_for(credential: ChatbotBot) -> ChatbotClient: ...
def client_for(
    credential: WeComApp | OfficialAccount | ChatbotBot,
) -> WeComClient | OfficialAccountClient | ChatbotClient:
    """The client that calls the platform as ``credential``; raises PlatformCredentialError."""
    platform = _PLATFORMS.get(type(credential))
    if platform is None:
        raise TypeError(f"No platform client for {type(credential).__name__}")
    try:
        match credential:
            case WeComApp():
                return WeComClient(
                    corp_id=credential.corp_id,
                    secret=credential.secret.reveal(),
                    rate_limit=credential.rate_limit,
                )
            case OfficialAccount():
                return OfficialAccountClient(
                    appid=credential.appid,
                    secret=credential.secret.reveal(),
                    rate_limit=credential.rate_limit,
                )
            case ChatbotBot():
                return ChatbotClient(
                    appid=credential.appid,
                    token=credential.token.reveal(),
                    encoding_aes_key=credential.encoding_aes_key.reveal(),
                    rate_limit=credential.rate_limit,
                )
    except CredentialDecryptError:
        raise PlatformCredentialError(platform=platform, explanation=_UNREADABLE) from None
    except CryptoError:
        raise PlatformCredentialError(platform=platform, explanation=_BAD_KEY) from None


_PLATFORMS: dict[type, str] = {WeComApp: WECOM, OfficialAccount: WECHAT, ChatbotBot: CHATBOT}
