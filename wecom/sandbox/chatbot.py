"""The emulated dialogue platform (chatbot): bots, their user labels, auto-replies in a debug and
an online copy, publishing between the two, and the aibot answers.

A bot is found by the TOKEN in the URL; its calls carry XML encrypted with its EncodingAESKey,
which the server decrypts and ``parse_chatbot_xml`` reads into fields. Methods named after an
endpoint take the TOKEN and those fields (aibot: its JSON body) and return the answer dict or
raise ``PlatformError``.
"""

from __future__ import annotations

import copy
import json
import string
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from .shared import PlatformError, Shared

__all__ = ["IGNORED_ELEMENTS", "ChatbotPlatform", "parse_chatbot_xml", "validate_reply_content"]

# How long a publish takes in the sandbox by default: long enough to see the bar move.
PUBLISH_SECONDS = 4.0

# Key of the chatbot request fields under which the server lists the elements the platform does
# not read (an <openid> outside <list> ...) as [path, text] pairs. "#" cannot start an XML name,
# so no element of the request can clash with it.
IGNORED_ELEMENTS = "#ignored"


_XML_LIST_ITEMS = frozenset({"openid", "question"})


def _field(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


def _field_list(fields: dict[str, Any], name: str) -> list[str]:
    value = fields.get(name)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v.strip()]


# ---- reply content (seed 002, PLATFORM.md section 4) ---------------------------------------

_NEWS_ARTICLE_FIELDS = {"title", "description", "url", "picurl", "type"}
_IMAGE_FIELDS = {"media_id", "url"}
_MINIPROGRAM_FIELDS = {"title", "appid", "pagepath", "thumb_media_id", "thumb_url"}
_RICH_KINDS = ("news", "image", "miniprogrampage", "multimsg")


def _check_object(value: object, where: str, allowed: set[str], required: Iterable[str]) -> str:
    if not isinstance(value, dict):
        return f"{where} must be an object"
    unknown = sorted(set(value) - allowed)
    if unknown:
        return f"{where} has unknown fields {unknown}; allowed: {sorted(allowed)}"
    for key in required:
        if not isinstance(value.get(key), str) or not value[key].strip():
            return f"{where}.{key} is required (non-empty string)"
    for key, item in value.items():
        if not isinstance(item, str):
            return f"{where}.{key} must be a string"
    return ""


def _check_single(kind: str, payload: object, where: str) -> str:
    if kind == "news":
        if not isinstance(payload, dict) or set(payload) != {"articles"}:
            return f"{where}.news must be an object with exactly the key 'articles'"
        articles = payload["articles"]
        if not isinstance(articles, list) or not articles:
            return f"{where}.news.articles must be a non-empty list"
        for index, article in enumerate(articles):
            here = f"{where}.news.articles[{index}]"
            problem = _check_object(article, here, _NEWS_ARTICLE_FIELDS, ("title", "url"))
            if problem:
                return problem
            if "type" in article and article["type"] not in ("h5", "mp"):
                return f"{here}.type must be 'h5' or 'mp'"
        return ""
    if kind == "image":
        return _check_object(payload, f"{where}.image", _IMAGE_FIELDS, ("media_id",))
    if kind == "miniprogrampage":
        return _check_object(
            payload,
            f"{where}.miniprogrampage",
            _MINIPROGRAM_FIELDS,
            ("title", "appid", "pagepath", "thumb_media_id"),
        )
    return f"{where}: unknown kind {kind!r}"


def validate_reply_content(content: str) -> str:
    """Return what is wrong with an auto-reply ``content``, or "" when it is acceptable.

    Plain text is anything that does not start with "{". An object travels as JSON text with
    exactly one of the keys news / image / miniprogrampage / multimsg.
    """
    if not content.lstrip().startswith("{"):
        return ""
    try:
        value = json.loads(content)
    except ValueError as exc:
        return f"content starts with '{{' but is not valid JSON ({exc})"
    if not isinstance(value, dict) or len(value) != 1:
        return f"content JSON must be an object with exactly one of the keys {list(_RICH_KINDS)}"
    ((kind, payload),) = value.items()
    if kind not in _RICH_KINDS:
        return f"content JSON has unknown kind {kind!r}; expected one of {list(_RICH_KINDS)}"
    if kind != "multimsg":
        return _check_single(kind, payload, "content")
    if not isinstance(payload, list) or not payload:
        return "content.multimsg must be a non-empty list"
    for index, item in enumerate(payload):
        where = f"content.multimsg[{index}]"
        if isinstance(item, str):
            if not item.strip():
                return f"{where} is an empty string"
            continue
        if not isinstance(item, dict) or len(item) != 1:
            return f"{where} must be a string or an object with one of news/image/miniprogrampage"
        ((inner, inner_payload),) = item.items()
        if inner not in ("news", "image", "miniprogrampage"):
            return f"{where} has unknown kind {inner!r}"
        problem = _check_single(inner, inner_payload, where)
        if problem:
            return problem
    return ""


# ---- the request XML ------------------------------------------------------------------------


def parse_chatbot_xml(text: str) -> dict[str, Any]:
    """``<xml>`` children as a dict; the items of ``<list>`` as lists under their names.

    The platform reads openids and similar questions from ``<list>`` only (PLATFORM.md section
    4; the seeds lost the wrapper). An ``<openid>`` or ``<question>`` anywhere else, and any
    other element inside ``<list>``, is not read: it is kept under ``IGNORED_ELEMENTS`` as
    ``[path, text]`` pairs so the state can count it and tests can see it. A repeated scalar
    element becomes a list; several ``<list>`` elements are read as one.

    Raises ValueError for anything that is not such a document.
    """
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ValueError("DOCTYPE/ENTITY declarations are not accepted")
    # The text was decrypted with the bot's key and expat refuses entity expansion bombs;
    # declarations are refused above anyway.
    root = ET.fromstring(text.encode("utf-8"))  # noqa: S314
    if root.tag != "xml":
        raise ValueError(f"root element is <{root.tag}>, not <xml>")
    fields: dict[str, Any] = {}
    ignored: list[list[str]] = []
    for child in root:
        if child.tag == "list":
            for item in child:
                if item.tag in _XML_LIST_ITEMS:
                    fields.setdefault(item.tag, []).append(item.text or "")
                else:
                    ignored.append([f"xml/list/{item.tag}", item.text or ""])
                ignored.extend(_list_items_below(item, f"xml/list/{item.tag}"))
            continue
        ignored.extend(_list_items_below(child, f"xml/{child.tag}"))
        value = child.text or ""
        if child.tag in _XML_LIST_ITEMS:
            ignored.append([f"xml/{child.tag}", value])
        elif child.tag in fields:
            previous = fields[child.tag]
            if not isinstance(previous, list):
                previous = fields[child.tag] = [previous]
            previous.append(value)
        else:
            fields[child.tag] = value
    if ignored:
        fields[IGNORED_ELEMENTS] = ignored
    return fields


def _list_items_below(element: ET.Element, path: str) -> list[list[str]]:
    """``[path, text]`` of every openid/question element nested anywhere inside ``element``."""
    found = []
    for child in element:
        child_path = f"{path}/{child.tag}"
        if child.tag in _XML_LIST_ITEMS:
            found.append([child_path, child.text or ""])
        found.extend(_list_items_below(child, child_path))
    return found


class ChatbotPlatform:
    """The bots (``state.chatbot``), each found by its TOKEN."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self.clear()

    def clear(self) -> None:
        self._bots: dict[str, dict[str, Any]] = {}
        self._bot_by_token: dict[str, str] = {}

    # ---- set-up helpers

    def add_bot(
        self, appid: str, token: str, encoding_aes_key: str, *, review_passed: bool = True
    ) -> None:
        with self._shared.lock:
            if appid in self._bots:
                raise ValueError(f"bot {appid} exists already")
            if token in self._bot_by_token:
                raise ValueError("another bot has this TOKEN")
            self._bots[appid] = {
                "appid": appid,
                "token": token,
                "encoding_aes_key": encoding_aes_key,
                "review_passed": review_passed,
                "labels": {},
                "skills": {},
                "online_skills": {},
            }
            self._bot_by_token[token] = appid
            self._shared.changed()

    def set_publish_behaviour(
        self,
        appid: str,
        *,
        seconds: float = PUBLISH_SECONDS,
        fail_at: int | None = None,
        stuck_at: int | None = None,
        envelope: str = "top",
    ) -> None:
        """How the bot's next publishes go: ``seconds`` from 0 to 100 %; ``fail_at`` ends them
        with status 2 at that percentage, ``stuck_at`` keeps them syncing there for good.
        ``envelope`` is where aibot puts its fields: ``top`` or inside ``data``."""
        for value in (fail_at, stuck_at):
            if value is not None and (not isinstance(value, int) or not 0 <= value <= 100):
                raise ValueError("fail_at and stuck_at are percentages (0..100)")
        if not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError("seconds must be a non-negative number")
        if envelope not in ("top", "data"):
            raise ValueError("envelope must be top or data")
        with self._shared.lock:
            self._bots[appid]["behaviour"] = {
                "seconds": float(seconds),
                "fail_at": fail_at,
                "stuck_at": stuck_at,
                "envelope": envelope,
            }
            self._shared.changed()

    def set_review(self, appid: str, passed: bool) -> None:
        with self._shared.lock:
            self._bots[appid]["review_passed"] = passed
            self._shared.changed()

    # ---- reads for tests

    def labels(self, appid: str) -> dict[tuple[str, str], dict[str, Any]]:
        with self._shared.lock:
            return copy.deepcopy(self._bots[appid]["labels"])

    def skills(self, appid: str) -> dict[tuple[str, str], dict[str, Any]]:
        with self._shared.lock:
            return copy.deepcopy(self._bots[appid]["skills"])

    def online_skills(self, appid: str) -> dict[tuple[str, str], dict[str, Any]]:
        """What the bot's online environment answers with (the last publish that succeeded)."""
        with self._shared.lock:
            return copy.deepcopy(self._bots[appid].get("online_skills", {}))

    def ignored_elements(self, appid: str) -> dict[str, int]:
        """How many elements the bot's calls sent that the platform does not read, by path
        (``xml/openid``: an openid outside ``<list>``). Not platform data: not in snapshots."""
        with self._shared.lock:
            return dict(self._bots[appid].get("ignored_elements", {}))

    # ================================================================ chatbot

    def publish_count(self, appid: str) -> int:
        """How many publishes were started (a follow-up of a running one is not one)."""
        with self._shared.lock:
            return int(self._bots[appid].get("publish_count", 0))

    # ---- endpoints

    def bot(self, token: str) -> dict[str, Any]:
        """The bot owning TOKEN (appid, encoding_aes_key, review_passed); 1001/1002 otherwise."""
        with self._shared.lock:
            appid = self._bot_by_token.get(token) if token else None
            if appid is None:
                raise PlatformError(1001, "TOKEN is not valid")
            bot = self._bots[appid]
            if not bot["review_passed"]:
                raise PlatformError(1002, "the robot failed the review")
            return {
                "appid": appid,
                "token": bot["token"],
                "encoding_aes_key": bot["encoding_aes_key"],
            }

    def bot_credentials(self, token: str) -> dict[str, Any] | None:
        """The bot's credentials regardless of its review state (for recording), or None."""
        with self._shared.lock:
            appid = self._bot_by_token.get(token) if token else None
            if appid is None:
                return None
            bot = self._bots[appid]
            return {"appid": appid, "encoding_aes_key": bot["encoding_aes_key"]}

    def _note_ignored(self, token: str, fields: dict[str, Any]) -> list[str]:
        """Count the elements the platform did not read, per path; their paths."""
        paths = [path for path, _text in fields.get(IGNORED_ELEMENTS, [])]
        if paths:
            with self._shared.lock:
                bot = self._bots[self.bot(token)["appid"]]
                counts = bot.setdefault("ignored_elements", {})
                for path in paths:
                    counts[path] = counts.get(path, 0) + 1
        return paths

    def batchset(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        ignored = self._note_ignored(token, fields)
        values = {name: _field(fields, name) for name in ("appid", "category", "label", "desc")}
        empty = [name for name, value in values.items() if not value.strip()]
        if empty:
            raise PlatformError(
                1007, f"appid, category, label, desc field cannot be empty (missing: {empty})"
            )
        openids = _field_list(fields, "openid")  # from <list> only
        with self._shared.lock:
            # The appid field names the Official Account or Mini Program the openids belong to
            # (seed 000), not the bot: any non-empty one is accepted.
            bot = self._bots[self.bot(token)["appid"]]
            if not openids:
                if any(path.endswith("/openid") for path in ignored):
                    # Openids outside <list> pass the emptiness check but label nobody, and the
                    # platform answers success (PLATFORM.md section 4).
                    return {"errcode": 0, "msg": "Success"}
                raise PlatformError(1008, "appid, openid, msg field cannot be empty (no openid)")
            key = (values["category"], values["label"])
            label = bot["labels"].setdefault(key, {"desc": values["desc"], "openids": set()})
            label["desc"] = values["desc"]
            label["openids"].update(openids)
            self._shared.changed()
        return {"errcode": 0, "msg": "Success"}

    def setautoreply(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        self._note_ignored(token, fields)
        names = ("managerid", "skillname", "title", "content")
        values = {name: _field(fields, name) for name in names}
        empty = [name for name, value in values.items() if not value.strip()]
        if empty:
            raise PlatformError(1008, f"field cannot be empty: {empty}")
        problem = validate_reply_content(values["content"])
        if problem:
            raise PlatformError(1008, f"invalid content: {problem}")
        questions = _field_list(fields, "question")  # from <list> only
        with self._shared.lock:
            bot = self._bots[self.bot(token)["appid"]]
            bot["skills"][(values["skillname"], values["title"])] = {
                "content": values["content"],
                "questions": list(dict.fromkeys(questions)),
                "managerid": values["managerid"],
            }
            self._shared.changed()
        return {"code": 0, "msg": "Success"}

    def _behaviour(self, bot: dict[str, Any]) -> dict[str, Any]:
        return bot.get("behaviour") or {
            "seconds": PUBLISH_SECONDS,
            "fail_at": None,
            "stuck_at": None,
            "envelope": "top",
        }

    def _publish_state(self, bot: dict[str, Any]) -> tuple[int, int]:
        """(progress, status) of the bot's last publish, copying debug to online on success."""
        publish = bot.get("publish")
        if publish is None:
            return 100, 1
        if publish["status"] != 0:
            return publish["progress"], publish["status"]
        behaviour = publish["behaviour"]
        elapsed = self._shared.now() - publish["started_at"]
        seconds = behaviour["seconds"]
        progress = 100 if seconds <= 0 else min(100, int(elapsed * 100 / seconds))
        status = 0
        if behaviour["fail_at"] is not None and progress >= behaviour["fail_at"]:
            progress, status = behaviour["fail_at"], 2
        elif behaviour["stuck_at"] is not None and progress >= behaviour["stuck_at"]:
            progress = behaviour["stuck_at"]
        elif progress >= 100:
            status = 1
            bot["online_skills"] = publish["snapshot"]
        publish["progress"] = progress
        publish["status"] = status
        if status:
            self._shared.changed()
        return progress, status

    def _managerid(self, fields: dict[str, Any]) -> str:
        managerid = _field(fields, "managerid")
        if not managerid.strip():
            raise PlatformError(1015, "managerid check failed")
        return managerid

    def publish(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Copy debug to online, over the behaviour's seconds; a publish still running goes on
        (a second one is not started)."""
        self._managerid(fields)
        with self._shared.lock:
            bot = self._bots[self.bot(token)["appid"]]
            _progress, status = self._publish_state(bot)
            if bot.get("publish") is None or status != 0:
                bot["publish"] = {
                    "started_at": self._shared.now(),
                    "snapshot": copy.deepcopy(bot["skills"]),
                    "behaviour": dict(self._behaviour(bot)),
                    "progress": 0,
                    "status": 0,
                }
                bot["publish_count"] = bot.get("publish_count", 0) + 1
                self._shared.changed()
        return {"code": 0, "errcode": 0, "msg": "success"}

    def publish_progress(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        self._managerid(fields)
        with self._shared.lock:
            bot = self._bots[self.bot(token)["appid"]]
            progress, status = self._publish_state(bot)
        return {"code": 0, "data": {"progress": progress, "status": status}, "msg": "success"}

    def aibot(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer ``query`` from the chosen environment by exact standard or similar question;
        a query that is part of some questions gets recommendations; NOMATCH otherwise."""
        from chatbot.signature import SignatureError, signature_read

        with self._shared.lock:
            bot = self._bots[self.bot(token)["appid"]]
            signature = body.get("signature")
            if not isinstance(signature, str) or not signature:
                raise PlatformError(1003, "signature is empty")
            try:
                signature_read(signature, key=bot["encoding_aes_key"], now=self._shared.now())
            except SignatureError as error:
                raise PlatformError(1006, f"signature check failed: {error}") from None
            query = body.get("query")
            if not isinstance(query, str) or not query.strip():
                raise PlatformError(1008, "query cannot be empty")
            env = body.get("env", "online")
            if env not in ("debug", "online"):
                raise PlatformError(1008, "env must be debug or online")
            if env == "online":
                self._publish_state(bot)
            skills = bot["skills"] if env == "debug" else bot.get("online_skills", {})
            envelope = self._behaviour(bot)["envelope"]
            fields: dict[str, Any] = {
                "answer": "",
                "answer_type": "text",
                "skill_name": "",
                "intent_name": "",
                "msg_id": "".join(self._shared.rng.choices(string.hexdigits.lower(), k=16)),
                "status": "NOMATCH",
                "options": [],
            }
            wanted = query.strip()
            for (skill_name, title), data in skills.items():
                if wanted == title or wanted in data["questions"]:
                    content = data["content"]
                    fields.update(
                        answer=content,
                        answer_type="text" if not content.startswith("{") else "json",
                        skill_name=skill_name,
                        intent_name=title,
                        status="FAQ",
                    )
                    break
            else:
                options = [
                    {
                        "ans_node_name": skill_name,
                        "title": title,
                        "answer": data["content"],
                        "confidence": round(len(wanted) / max(len(title), 1), 2),
                    }
                    for (skill_name, title), data in skills.items()
                    if len(wanted) >= 2 and wanted in title
                ][:3]
                if options:
                    fields.update(status="FAQ_RECOMMEND", options=options)
        if envelope == "data":
            return {"code": 0, "msg": "success", "data": fields}
        return fields

    # ---- snapshots (the caller holds the lock)

    def snapshot(self) -> dict[str, Any]:
        return {
            appid: {
                "token": bot["token"],
                "encoding_aes_key": bot["encoding_aes_key"],
                "review_passed": bot["review_passed"],
                "labels": [
                    {
                        "category": category,
                        "label": label,
                        "desc": data["desc"],
                        "openids": sorted(data["openids"]),
                    }
                    for (category, label), data in bot["labels"].items()
                ],
                "skills": _skills_snapshot(bot["skills"]),
                "online_skills": _skills_snapshot(bot.get("online_skills", {})),
            }
            for appid, bot in self._bots.items()
        }

    def restore(self, bots: dict[str, Any]) -> None:
        for appid, b in bots.items():
            self._bots[appid] = {
                "appid": appid,
                "token": b["token"],
                "encoding_aes_key": b["encoding_aes_key"],
                "review_passed": b.get("review_passed", True),
                "labels": {
                    (x["category"], x["label"]): {
                        "desc": x["desc"],
                        "openids": set(x.get("openids", [])),
                    }
                    for x in b.get("labels", [])
                },
                "skills": _skills_restored(b.get("skills", [])),
                "online_skills": _skills_restored(b.get("online_skills", [])),
            }
            self._bot_by_token[b["token"]] = appid


def _skills_snapshot(skills: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"skillname": skill, "title": title, **copy.deepcopy(data)}
        for (skill, title), data in skills.items()
    ]


def _skills_restored(entries: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (x["skillname"], x["title"]): {
            "content": x["content"],
            "questions": list(x.get("questions", [])),
            "managerid": x.get("managerid", ""),
        }
        for x in entries
    }
