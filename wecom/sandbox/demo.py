"""Demo data: one WeCom corp, one Official Account and one bot, in realistic formats.

The credentials are fixed (the console's `make run` configuration points at them) and fake: they
exist only in this sandbox.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from .state import SandboxState

__all__ = [
    "DEMO",
    "DEMO_CUSTOMER_COUNT",
    "DEMO_MEMBERS",
    "DemoCredentials",
    "demo_external_userid",
    "demo_openid",
    "seed_demo",
    "seed_demo_customers",
]


@dataclass(frozen=True)
class DemoCredentials:
    wecom_corp_id: str
    wecom_secret: str
    wecom_agent_id: int
    oa_appid: str
    oa_secret: str
    oa_openid_prefix: str
    bot_appid: str
    bot_token: str
    bot_encoding_aes_key: str
    bot_manager_id: str


DEMO = DemoCredentials(
    wecom_corp_id="wwc96c9fd6bd584b29",
    wecom_secret="x4q5eIDsRU3bmsv8qe1rC6lIb4FkvsDYhi5ljPi4Btc",  # noqa: S106 - fake, sandbox-only
    wecom_agent_id=1000002,
    oa_appid="wx0118deba10ef81d4",
    oa_secret="71e8c3dd8fa2d111f78059039c0c842b",  # noqa: S106 - fake, sandbox-only
    oa_openid_prefix="oW3Kq_",
    bot_appid="Hq7sKd2PzWm4Lx9T",
    bot_token="Q9fTz3LmWc8RkD1vXy6NpA2sHj5GbE7u",  # noqa: S106 - fake, sandbox-only
    bot_encoding_aes_key="MsHqZsAd059m3K5Rf4U2aQBBDXFMR/duk75Y8ZvI3NQ",
    bot_manager_id="demo_manager",
)


def demo_openid(prefix: str, n: int) -> str:
    """A well-formed 28-character openid with the account's prefix, the same for the same n."""
    digest = hashlib.sha256(f"{prefix}:{n}".encode()).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode()[:22]


_STRATEGIES = (
    # (id, name, parent)
    (1, "华东区销售规则组", 0),
    (2, "会员运营规则组", 0),
    (3, "上海门店规则组", 1),
)

_GROUPS = (
    # (strategy, group name, group order, [(tag name, order)])
    (1, "客户等级", 30, [("重要客户", 20), ("普通客户", 10), ("潜在客户", 5)]),
    (1, "意向产品", 20, [("企业版", 3), ("专业版", 2), ("基础版", 1), ("试用中", 0)]),
    (1, "跟进阶段", 0, [("待跟进", 0), ("已成交", 8)]),
    (2, "会员等级", 100, [("金卡会员", 50), ("银卡会员", 40), ("普通会员", 30)]),
    (2, "兴趣偏好", 60, [("数码", 0), ("运动户外", 0)]),
)

_CORP_GROUPS = (
    # (group name, group order, [(tag name, order)], made by the demo app (else in WeCom's admin))
    ("客户来源", 50, [("官网咨询", 30), ("展会", 20), ("老客户介绍", 10)], True),
    ("客户行业", 40, [("零售", 0), ("制造", 0), ("教育", 0), ("金融", 0)], True),
    ("服务阶段", 10, [("售前", 2), ("售中", 1), ("售后", 0)], False),
)

# WeCom members with customer contact: (userid, name, strategies whose range holds them).
# sunqi is in no strategy's range: strategy tags on its customers are refused.
DEMO_MEMBERS = (
    ("zhangsan", "张三", (1, 2)),
    ("lisi", "李四", (1,)),
    ("wangwu", "王五", (1, 3)),
    ("zhaoliu", "赵六", (2,)),
    ("sunqi", "孙七", ()),
)
DEMO_CUSTOMER_COUNT = 3000


def demo_external_userid(n: int) -> str:
    """A well-formed 32-character external_userid (``wm…``), the same for the same n."""
    digest = hashlib.sha256(f"wecom-customer:{n}".encode()).digest()
    return "wm" + base64.urlsafe_b64encode(digest).decode()[:30]


def _demo_followers(n: int) -> list[str]:
    """Customer n's members: one each in turn, a second on every 7th, a third on every 50th."""
    userids = [m[0] for m in DEMO_MEMBERS]
    chosen = [userids[n % len(userids)]]
    if n % 7 == 0:
        chosen.append(userids[(n + 1) % len(userids)])
    if n % 50 == 0:
        chosen.append(userids[(n + 2) % len(userids)])
    return chosen


_OA_TAGS = (
    # (name, follower numbers)
    ("高价值客户", range(0, 5)),
    ("活动报名", range(3, 9)),
    ("广东", range(8, 12)),
    ("新关注", range(12, 15)),
)


def seed_demo(state: SandboxState) -> None:
    """Add the demo corp, account and bot (with their data) to ``state``."""
    d = DEMO
    wecom, account = state.wecom, state.official_account
    wecom.add_app(d.wecom_corp_id, d.wecom_secret, agent_id=d.wecom_agent_id)
    for strategy_id, name, parent_id in _STRATEGIES:
        wecom.add_strategy(
            d.wecom_corp_id,
            strategy_id,
            name,
            parent_id=parent_id,
            admin_list=["zhangsan", "lisi"] if parent_id == 0 else ["wangwu"],
        )
    for strategy_id, group_name, order, tags in _GROUPS:
        wecom.add_strategy_group(d.wecom_corp_id, strategy_id, group_name, order=order, tags=tags)
    for group_name, order, tags, by_app in _CORP_GROUPS:
        wecom.add_corp_group(
            d.wecom_corp_id,
            group_name,
            order=order,
            tags=tags,
            app_secret=d.wecom_secret if by_app else None,
        )
    seed_demo_customers(state)

    account.add_account(d.oa_appid, d.oa_secret, openid_prefix=d.oa_openid_prefix)

    for name, numbers in _OA_TAGS:
        tag_id = account.add_tag(d.oa_appid, name)
        account.tag_users(d.oa_appid, tag_id, [demo_openid(d.oa_openid_prefix, n) for n in numbers])

    state.chatbot.add_bot(d.bot_appid, d.bot_token, d.bot_encoding_aes_key)


def seed_demo_customers(state: SandboxState) -> None:
    """The demo corp's members and customers; also added to a state file saved before the
    sandbox had customers (``sandbox --demo`` with ``--state``)."""
    customers = state.customers
    if customers.has_members(DEMO.wecom_corp_id):
        return
    try:
        state.wecom.strategy_tag_count(DEMO.wecom_corp_id)
    except ValueError:
        return  # a state without the demo corp
    for userid, name, strategies in DEMO_MEMBERS:
        customers.add_member(DEMO.wecom_corp_id, userid, name=name, strategies=strategies)
    for n in range(DEMO_CUSTOMER_COUNT):
        customers.add_customer(
            DEMO.wecom_corp_id,
            demo_external_userid(n),
            name=f"客户{n:04d}",
            followers=_demo_followers(n),
        )
