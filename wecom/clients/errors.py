"""What can go wrong in a platform call, and how to say it to a person.

:class:`PlatformError` is the one exception type platform clients raise. It carries the
platform's ``errcode`` and ``errmsg`` and a translated sentence for people (``explanation``).
Subclasses only say where the failure happened: the platform answered with an error
(:class:`PlatformAPIError`), the call never got a usable answer (:class:`PlatformTransportError`),
the console refused to send what it was given (:class:`PlatformInputError`), or the stored
credential could not be used to build a client (:class:`PlatformCredentialError`).

Each errcode's meaning and handling (retry? token problem? daily quota?) is written once, in
:data:`ERRCODES`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_lazy as _

WECOM = "wecom"
WECHAT = "wechat"
CHATBOT = "chatbot"

PLATFORM_NAMES: dict[str, Promise] = {
    WECOM: _("WeCom"),
    WECHAT: _("the Official Account platform"),
    CHATBOT: _("the dialogue platform"),
}


@dataclass(frozen=True)
class ItemRefusal:
    """A list refused because of one of its items, which the platform does not name: the list
    can be split until that item stands alone (bulk tagging does), and the rest goes through."""

    # What the refusal means for that one item, as the person who sent the list reads it.
    reason: Promise
    # Another attempt may pass once the person has done something about it.
    retryable: bool = False


@dataclass(frozen=True)
class Errcode:
    explanation: Promise
    # Busy or throttled: the same call may succeed a little later.
    retryable: bool = False
    # The access token is invalid or expired: drop it, fetch another, try once more.
    token: bool = False
    # A quota that resets only tomorrow: stop, do not retry today.
    quota: bool = False
    # Caused by one item of a list the call carried (an OpenID of a batch).
    item: ItemRefusal | None = None


_BUSY = Errcode(
    _("The platform is busy. The console retried; try again in a few minutes."), retryable=True
)
_TOKEN_INVALID = Errcode(
    _("The access token was not accepted. The console fetched a new one and tried again."),
    token=True,
)
_TOKEN_EXPIRED = Errcode(
    _("The access token had expired. The console fetched a new one and tried again."), token=True
)

# (platform, errcode) -> meaning. Where a code means something else on one endpoint (40001 on
# the token endpoint is a wrong secret, not a bad token), ENDPOINT_ERRCODES says so.
ERRCODES: dict[tuple[str, int], Errcode] = {
    # WeCom, PLATFORM.md section 2 and doc 90135.
    (WECOM, -1): _BUSY,
    (WECOM, 40001): _TOKEN_INVALID,
    (WECOM, 40014): _TOKEN_INVALID,
    (WECOM, 42001): _TOKEN_EXPIRED,
    (WECOM, 41001): Errcode(_("The call carried no access token."), token=True),
    (WECOM, 40013): Errcode(_("The corp ID is not valid. Check it in the credential.")),
    (WECOM, 40058): Errcode(
        _("WeCom refused a value of the request as not valid (a name, an order or an id).")
    ),
    (WECOM, 40068): Errcode(
        _(
            "The tag or tag group does not exist in WeCom any more. Pull again to see the "
            "current tags."
        )
    ),
    (WECOM, 40071): Errcode(
        _("A tag or tag group with this name exists already. Choose another name.")
    ),
    (WECOM, 45009): Errcode(
        _("The app has used up its WeCom API calls for now. Try again later."), quota=True
    ),
    (WECOM, 45033): Errcode(
        _("Too many calls at the same time. The console retried; try again shortly."),
        retryable=True,
    ),
    (WECOM, 48002): Errcode(
        _(
            "This app may not call the customer-contact API. In the WeCom admin, add it to "
            "Customer Contact → “apps that may call the API”."
        )
    ),
    (WECOM, 60011): Errcode(
        _(
            "The app has no permission for this strategy or its members. Check the app's "
            "visibility range in WeCom."
        )
    ),
    (WECOM, 301002): Errcode(
        _("The app may only change tags it created itself; this one was made elsewhere.")
    ),
    # WeCom customers (mark_tag and the customer lists). Where WeCom documents no errcode the
    # sandbox's choice is used (wecom/sandbox/customers.py says which and why). Each is about
    # one (member, customer) of a tagging job: ``item`` says what it means for that pair.
    (WECOM, 84061): Errcode(
        _("This customer is not one of this member's customers in WeCom (any more)."),
        item=ItemRefusal(
            _(
                "Not this member's customer: the member does not follow this customer in "
                "WeCom (any more)."
            )
        ),
    ),
    (WECOM, 40096): Errcode(
        _("WeCom does not know this customer: the external_userid is not valid for this corp."),
        item=ItemRefusal(
            _("WeCom does not know this customer: the external_userid is not of this corp.")
        ),
    ),
    (WECOM, 60111): Errcode(
        _("WeCom has no member with this userid."),
        item=ItemRefusal(_("WeCom has no member with this userid (left the company?).")),
    ),
    (WECOM, 45035): Errcode(
        _("The member holds 3,000 tags on this customer already, the most WeCom allows."),
        item=ItemRefusal(
            _(
                "The member holds 3,000 tags on this customer already, the most WeCom allows. "
                "Remove some, then retry the failed."
            ),
            retryable=True,
        ),
    ),
    # Official Account, seed 001 and PLATFORM.md section 3.
    (WECHAT, -1): _BUSY,
    (WECHAT, 40001): _TOKEN_INVALID,
    (WECHAT, 40014): _TOKEN_INVALID,
    (WECHAT, 42001): _TOKEN_EXPIRED,
    (WECHAT, 41001): Errcode(_("The call carried no access token."), token=True),
    (WECHAT, 40003): Errcode(
        _(
            "An OpenID in the list is not valid: it does not follow this Official Account. "
            "The platform does not say which one."
        ),
        item=ItemRefusal(
            _(
                "The platform calls this OpenID invalid: it does not follow the Official "
                "Account (any more)."
            )
        ),
    ),
    (WECHAT, 40013): Errcode(_("The AppID is not valid. Check it in the credential.")),
    (WECHAT, 40032): Errcode(_("The list of OpenIDs is empty or too long (at most 50 per call).")),
    (WECHAT, 40125): Errcode(_("The AppSecret is wrong. Check it in the credential.")),
    (WECHAT, 40164): Errcode(
        _(
            "The platform refused this server's IP address. Add it to the Official Account's "
            "IP allowlist."
        )
    ),
    (WECHAT, 45009): Errcode(
        _(
            "The Official Account has used up today's calls for this API. It resets tomorrow; "
            "the console will not retry today."
        ),
        quota=True,
    ),
    (WECHAT, 45011): Errcode(
        _("Too many calls this minute. The console slowed down and retried."), retryable=True
    ),
    (WECHAT, 45056): Errcode(_("The Official Account has 100 tags already, the most it may have.")),
    (WECHAT, 45057): Errcode(_("This tag has more than 100,000 followers and cannot be deleted.")),
    (WECHAT, 45058): Errcode(_("Tags 0, 1 and 2 are reserved by the platform and cannot change.")),
    (WECHAT, 45059): Errcode(
        _("A follower in the list has 20 tags already, the most a follower may have."),
        item=ItemRefusal(
            _(
                "This follower has 20 tags already, the most the platform allows. Remove one "
                "of them, then retry the failed OpenIDs."
            ),
            retryable=True,
        ),
    ),
    (WECHAT, 45157): Errcode(_("A tag with this name exists already. Choose another name.")),
    (WECHAT, 45158): Errcode(_("The tag name is too long: at most 30 characters.")),
    (WECHAT, 45159): Errcode(
        _(
            "The tag does not exist on the platform (right after creating a tag this can happen "
            "for a moment)."
        )
    ),
    (WECHAT, 45169): Errcode(
        _(
            "The same follower was being tagged by another call at the same time. The console "
            "retried."
        ),
        retryable=True,
    ),
    (WECHAT, 47001): Errcode(_("The platform could not read the request.")),
    (WECHAT, 48001): Errcode(
        _("The Official Account is not authorised for this API (it may need to be verified).")
    ),
    (WECHAT, 49003): Errcode(
        _("An OpenID in the list belongs to another Official Account."),
        item=ItemRefusal(_("This OpenID belongs to another Official Account or mini program.")),
    ),
    # Dialogue platform, seeds 000 and 002.
    (CHATBOT, -1): _BUSY,
    (CHATBOT, 1001): Errcode(_("The bot's TOKEN is not valid. Check it in the credential.")),
    (CHATBOT, 1002): Errcode(_("The bot has not passed the platform's review yet.")),
    (CHATBOT, 1003): Errcode(_("The platform reported a signature without a user id.")),
    (CHATBOT, 1004): Errcode(_("The platform received an empty encrypted message.")),
    (CHATBOT, 1005): Errcode(
        _(
            "The platform could not decrypt the message: the EncodingAESKey or AppID in the "
            "credential does not match the bot's."
        )
    ),
    (CHATBOT, 1006): Errcode(_("The platform's signature check failed (user id missing).")),
    (CHATBOT, 1007): Errcode(_("AppID, category, label and description must all be filled in.")),
    (CHATBOT, 1008): Errcode(
        _("A required field is empty (AppID, OpenID list, or the question and answer).")
    ),
    (CHATBOT, 1015): Errcode(
        _("The platform did not accept the manager ID. Check the chatbot's default manager ID.")
    ),
}

ENDPOINT_ERRCODES: dict[tuple[str, str, int], Errcode] = {
    (WECOM, "/cgi-bin/externalcontact/mark_tag", 60011): Errcode(
        _(
            "The member is outside the range of the strategy this tag belongs to: only members "
            "inside a strategy's range may put its tags on customers."
        ),
        item=ItemRefusal(
            _(
                "The member is outside the range of the tag's strategy (规则组): only members "
                "inside it may use its tags."
            ),
            retryable=True,
        ),
    ),
    (WECOM, "/cgi-bin/externalcontact/mark_tag", 40068): Errcode(
        _(
            "A chosen tag does not exist in WeCom any more (deleted meanwhile). Pull the tags "
            "again and choose others."
        ),
        item=ItemRefusal(_("A chosen tag was deleted in WeCom meanwhile.")),
    ),
    (WECOM, "/cgi-bin/gettoken", 40001): Errcode(
        _("The app secret is wrong, or it is a system-app secret. Check it in the credential.")
    ),
    (WECHAT, "/cgi-bin/stable_token", 40001): Errcode(
        _("The AppSecret is wrong. Check it in the credential.")
    ),
}

_UNKNOWN = Errcode(_("%(Platform)s refused the request (it said: %(errmsg)s)."))


def errcode_info(platform: str, endpoint: str, errcode: int) -> Errcode:
    return (
        ENDPOINT_ERRCODES.get((platform, endpoint, errcode))
        or ERRCODES.get((platform, errcode))
        or _UNKNOWN
    )


class PlatformError(Exception):
    """A platform call that did not succeed. ``str()`` is the sentence to show a person."""

    def __init__(
        self,
        *,
        platform: str,
        endpoint: str,
        errcode: int | None = None,
        errmsg: str = "",
        explanation: Promise | str | None = None,
        explanation_params: dict[str, object] | None = None,
        retryable: bool = False,
        token_problem: bool = False,
        quota: bool = False,
        item: ItemRefusal | None = None,
    ) -> None:
        self.platform = platform
        self.endpoint = endpoint
        self.errcode = errcode
        self.errmsg = errmsg
        self._explanation = explanation
        self._explanation_params = explanation_params or {}
        self.retryable = retryable
        self.token_problem = token_problem
        self.quota = quota
        self.item = item
        # When a call that timed out after it was sent may have finished on the platform (the
        # transport's monotonic clock): sending the same items again before then could put
        # them in flight twice at once. 0: nothing to wait for.
        self.settle_until = 0.0
        super().__init__(f"{platform} {endpoint}: errcode={errcode} errmsg={errmsg}")

    @property
    def explanation(self) -> str:
        """The human sentence, in the active language, with the errcode for support."""
        platform_name = str(PLATFORM_NAMES.get(self.platform, self.platform))
        text = str(self._explanation or "") % {
            "platform": platform_name,
            "Platform": platform_name[:1].upper() + platform_name[1:],
            "errcode": self.errcode,
            "errmsg": self.errmsg or "-",
            **self._explanation_params,
        }
        if self.errcode is not None:
            text = gettext("%(explanation)s (Error code %(errcode)s.)") % {
                "explanation": text,
                "errcode": self.errcode,
            }
        return text

    def note(self) -> dict[str, object]:
        """:attr:`explanation` as a note (console/notes.py): stored untranslated, read later
        in each reader's language (a job's reason)."""
        from console.notes import msgid, note

        name = PLATFORM_NAMES.get(self.platform)
        platform: object = (
            {"msgid": msgid(name), "params": {}} if name is not None else self.platform
        )
        capital = (
            {"msgid": msgid(name), "params": {}, "capitalize": True}
            if name is not None
            else self.platform
        )
        explained = note(
            self._explanation or "",
            {
                "platform": platform,
                "Platform": capital,
                "errcode": self.errcode,
                "errmsg": self.errmsg or "-",
                **self._explanation_params,
            },
        )
        if self.errcode is None:
            return explained
        return note(
            _("%(explanation)s (Error code %(errcode)s.)"),
            {"explanation": explained, "errcode": self.errcode},
        )

    def __str__(self) -> str:
        return self.explanation


class PlatformAPIError(PlatformError):
    """The platform answered, with an errcode other than 0."""

    @classmethod
    def from_answer(
        cls, *, platform: str, endpoint: str, errcode: int, errmsg: str
    ) -> PlatformAPIError:
        info = errcode_info(platform, endpoint, errcode)
        return cls(
            platform=platform,
            endpoint=endpoint,
            errcode=errcode,
            errmsg=errmsg,
            explanation=info.explanation,
            retryable=info.retryable,
            token_problem=info.token,
            quota=info.quota,
            item=info.item,
        )


class PlatformTransportError(PlatformError):
    """No usable answer: the connection failed, timed out, or the server answered HTTP 5xx or
    something that is not the platform's JSON."""


class PlatformInputError(PlatformError):
    """The console refused to send a request the platform would reject or misread."""


class PlatformCredentialError(PlatformError):
    """The stored credential cannot be used (a secret no configured key decrypts, an invalid
    EncodingAESKey): no client was built, nothing was sent."""

    def __init__(self, *, platform: str, explanation: Promise) -> None:
        super().__init__(platform=platform, endpoint="", explanation=explanation)
