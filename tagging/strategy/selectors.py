"""Reads of the strategy tag pages: the tree of one app, one group's tags, the open re-spacings.

A strategy may hold all 10,000 tags of a corp. The tree therefore draws every group of the
chosen strategy with its count, but the tags only of its first groups (as many as fit in
``OPEN_TAGS``) and of the groups the page asks to keep open; a group's other tags are read when
it is opened (:func:`group_tags`). A search is answered here too, as the same tree filtered:
the strategies with matches, the groups that match or hold matching tags, and only those tags.
The number of queries never depends on the number of tags.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import BooleanField, Count, ExpressionWrapper, Q, QuerySet

from console.jobs.selectors import jobs_with_progress
from console.models import OPEN_JOB_STATUSES, Job, JobProgress
from tagging.strategy.models import Strategy, StrategyPull, SyncState, Tag, TagGroup
from tagging.strategy.respacing import RESPACE_KIND
from tagging.strategy.services import corp_tag_count
from wecom.models import WeComApp
from wecom.rules import CORP_TAG_LIMIT

# Tags drawn with the page: a group is drawn open while the tags of the groups above it and
# its own fit in this (about 45 KB of HTML); the others show their count and open on a click.
# Beside 500 closed groups (300 KB), the page stays well under 500 KB.
OPEN_TAGS = 100
# What a group's head and a tag chip of the tree show (tagging/templatetags/strategy_tree.py).
GROUP_HEAD_FIELDS = (
    "pk", "name", "order", "pending_name", "pending_order", "pending_delete", "sync_state",
    "sync_message",
)  # fmt: skip
TAG_CHIP_FIELDS = (*GROUP_HEAD_FIELDS, "group_id")


@dataclass
class StrategyNode:
    strategy: Strategy
    children: list[Strategy] = field(default_factory=list)


@dataclass
class GroupNode:
    # A named row of GROUP_HEAD_FIELDS, read like a group.
    group: Any
    # All its tags, and with a search those whose name matches (None: it shows all of them).
    n_tags: int
    n_matches: int | None
    # Named rows of TAG_CHIP_FIELDS, read like tags; None while the group is drawn closed.
    tags: list[Any] | None = None

    @property
    def is_open(self) -> bool:
        return self.tags is not None

    @property
    def shown_count(self) -> int:
        return self.n_tags if self.n_matches is None else self.n_matches


@dataclass
class Respacing:
    """A re-spacing job of one of the strategy's lists that is not over yet."""

    job: Job
    progress: JobProgress


@dataclass
class StrategyTree:
    app: WeComApp
    strategies: list[Strategy]
    nav: list[StrategyNode]
    selected: Strategy | None
    groups: list[GroupNode]
    query: str = ""
    respacings: list[Respacing] = field(default_factory=list)
    # The corporate tag library (企业标签), drawn beside the strategies; None before a pull.
    corporate: Strategy | None = None
    # Tags of the corp, both kinds (WeCom's 10,000 counts them together).
    tags_used: int = 0
    tags_limit: int = CORP_TAG_LIMIT

    @property
    def tags_used_text(self) -> str:
        return f"{self.tags_used:,}"

    @property
    def tags_limit_text(self) -> str:
        # "10,000" as WeCom's documents write it, in every language of the console.
        return f"{self.tags_limit:,}"

    @property
    def searching(self) -> bool:
        return bool(self.query)

    @property
    def groups_whole(self) -> bool:
        """All the strategy's groups are listed (not only a search's): they can be re-ordered."""
        return not self.query or bool(getattr(self.selected, "name_matches", False))

    @property
    def n_group_matches(self) -> int:
        return len(self.groups) if self.searching else 0

    @property
    def n_tag_matches(self) -> int:
        return sum(node.n_matches or 0 for node in self.groups)


def _names_containing(query: str, prefix: str = "") -> Q:
    return Q(**{f"{prefix}name__icontains": query})


def _matching(query: str, prefix: str = "") -> ExpressionWrapper:
    return ExpressionWrapper(_names_containing(query, prefix), output_field=BooleanField())


def _counts(rows: QuerySet[Any], key: str, query: str, **extra: Count) -> dict[int, dict[str, int]]:
    """Counts per ``key`` in one grouped query; ``matches``: names containing ``query``."""
    annotations = {"n": Count("pk"), **extra}
    if query:
        annotations["matches"] = Count("pk", filter=_names_containing(query))
    return {row[key]: row for row in rows.order_by().values(key).annotate(**annotations)}


def _strategies(app: WeComApp, query: str) -> list[Strategy]:
    """The app's strategies with their counts (and matches), in three queries."""
    strategies = list(Strategy.objects.filter(app=app).order_by("wecom_id"))
    # The corporate root (企业标签) after the strategies: a page opens on a strategy as before.
    strategies.sort(key=lambda strategy: strategy.is_corporate)
    # Counts per strategy by two grouped queries over the app's rows, not joins per strategy.
    groups = _counts(TagGroup.objects.filter(app=app), "strategy_id", query)
    tags = _counts(
        Tag.objects.filter(app=app),
        "group__strategy_id",
        query,
        attention=Count("pk", filter=~Q(sync_state=SyncState.IN_SYNC)),
    )
    folded = query.casefold()
    nothing: dict[str, int] = {}
    for strategy in strategies:
        of_groups, of_tags = groups.get(strategy.pk, nothing), tags.get(strategy.pk, nothing)
        strategy.n_groups = of_groups.get("n", 0)  # type: ignore[attr-defined]
        strategy.n_tags = of_tags.get("n", 0)  # type: ignore[attr-defined]
        strategy.n_attention = of_tags.get("attention", 0)  # type: ignore[attr-defined]
        strategy.n_matches = of_groups.get("matches", 0) + of_tags.get("matches", 0)  # type: ignore[attr-defined]
        strategy.name_matches = bool(query) and folded in strategy.name.casefold()  # type: ignore[attr-defined]
    return strategies


def _select(strategies: list[Strategy], strategy_id: int | None, query: str) -> Strategy | None:
    """The strategy asked for; else the first with matches when searching, else the first
    with groups, else the first."""
    chosen = next((s for s in strategies if s.pk == strategy_id), None)
    if chosen is None and query:
        chosen = next(
            (s for s in strategies if s.n_matches or s.name_matches),  # type: ignore[attr-defined]
            None,
        )
    if chosen is None:
        chosen = next(
            (s for s in strategies if s.n_groups),  # type: ignore[attr-defined]
            strategies[0] if strategies else None,
        )
    return chosen


def _nav(strategies: list[Strategy]) -> list[StrategyNode]:
    """First-level strategies in WeCom's order, each with its children (not the corporate
    root: the page draws it apart)."""
    nodes = {
        s.pk: StrategyNode(strategy=s) for s in strategies if not s.parent_id and not s.is_corporate
    }
    orphans = []
    for strategy in strategies:
        if strategy.parent_id:
            parent = nodes.get(strategy.parent_id)
            if parent is None:
                orphans.append(StrategyNode(strategy=strategy))
            else:
                parent.children.append(strategy)
    return [*nodes.values(), *orphans]


def _group_nodes(strategy: Strategy, query: str) -> list[GroupNode]:
    """The strategy's groups in WeCom's order with their counts: one query. Searching, only
    those that match or hold matching tags, unless the strategy's own name matches."""
    groups: QuerySet[TagGroup] = TagGroup.objects.filter(strategy=strategy).annotate(
        n_tags=Count("tags")
    )
    fields = [*GROUP_HEAD_FIELDS, "n_tags"]
    filtered = bool(query) and not strategy.name_matches  # type: ignore[attr-defined]
    if filtered:
        groups = groups.annotate(
            n_matches=Count("tags", filter=_names_containing(query, "tags__")),
            name_matches=_matching(query),
        ).filter(Q(name_matches=True) | Q(n_matches__gt=0))
        fields += ["n_matches", "name_matches"]
    # Rows, not models, as for the chips: 500 TagGroup instances were a third of the page.
    rows = groups.order_by("-order", "pk").values_list(*fields, named=True)
    return [
        GroupNode(
            group=group,
            n_tags=group.n_tags,  # type: ignore[attr-defined]
            # A group whose own name matches shows all its tags.
            n_matches=(
                group.n_matches  # type: ignore[attr-defined]
                if filtered and not group.name_matches  # type: ignore[attr-defined]
                else None
            ),
        )
        for group in rows
    ]


def _open(nodes: Sequence[GroupNode], keep_open: Collection[int], query: str) -> None:
    """Read the tags of the groups drawn open, in one query: the first groups while their
    tags fit in OPEN_TAGS, and those in ``keep_open``."""
    budget = OPEN_TAGS
    opening: dict[int, GroupNode] = {}
    for node in nodes:
        if node.shown_count > budget:
            break
        budget -= node.shown_count
        opening[node.group.pk] = node
    for node in nodes:
        if node.group.pk in keep_open:
            opening[node.group.pk] = node
    if not opening:
        return
    filtered = [pk for pk, node in opening.items() if node.n_matches is not None]
    whole = [pk for pk, node in opening.items() if node.n_matches is None]
    wanted = Q(group_id__in=whole) | (Q(group_id__in=filtered) & _names_containing(query))
    for node in opening.values():
        node.tags = []
    for tag in _chip_rows(Tag.objects.filter(wanted)):
        opening[tag.group_id].tags.append(tag)  # type: ignore[union-attr]


def _chip_rows(tags: QuerySet[Tag]) -> list[Any]:
    # Rows, not models: the chips only read these, and thousands of Tag instances (with their
    # dates parsed) were a good part of the page's time.
    return list(tags.order_by("-order", "pk").values_list(*TAG_CHIP_FIELDS, named=True))


def strategy_respacings(strategy: Strategy) -> list[Respacing]:
    """The strategy's re-spacing jobs that are not over, with their progress: one query."""
    jobs = Job.objects.filter(
        kind=RESPACE_KIND, status__in=OPEN_JOB_STATUSES, params__strategy=strategy.pk
    ).order_by("pk")
    return [Respacing(job=job, progress=progress) for job, progress in jobs_with_progress(jobs)]


def strategy_tree(
    app: WeComApp,
    *,
    strategy_id: int | None,
    query: str = "",
    keep_open: Collection[int] = (),
) -> StrategyTree:
    """The app's strategies with counts, and one strategy's groups, the tags of those drawn
    open and its re-spacings, and the corp's tags counted against WeCom's limit; with
    ``query``, filtered to names containing it. Seven queries, whatever the number of groups
    and tags (six when no group is drawn open)."""
    strategies = _strategies(app, query)
    selected = _select(strategies, strategy_id, query)
    groups: list[GroupNode] = []
    respacings: list[Respacing] = []
    if selected is not None:
        groups = _group_nodes(selected, query)
        _open(groups, keep_open, query)
        respacings = strategy_respacings(selected)
    return StrategyTree(
        app=app,
        strategies=strategies,
        nav=_nav(strategies),
        selected=selected,
        groups=groups,
        query=query,
        respacings=respacings,
        corporate=next((s for s in strategies if s.is_corporate), None),
        tags_used=corp_tag_count(app),
    )


def group_tags(group: TagGroup, *, query: str = "") -> list[Any]:
    """One group's tags as chip rows, in WeCom's order; only names containing ``query`` if
    given. One query."""
    tags = Tag.objects.filter(group=group)
    if query:
        tags = tags.filter(_names_containing(query))
    return _chip_rows(tags)


def list_orders(parent: Strategy | TagGroup) -> list[tuple[int, int, str]]:
    """The (pk, order, sync state) of a strategy's groups or a group's tags, in WeCom's order:
    what every move answer carries."""
    items: QuerySet[Any] = (
        TagGroup.objects.filter(strategy=parent)
        if isinstance(parent, Strategy)
        else Tag.objects.filter(group=parent)
    )
    return list(items.order_by("-order", "pk").values_list("pk", "order", "sync_state"))


def app_pull(app: WeComApp) -> StrategyPull | None:
    return StrategyPull.objects.filter(app=app).first()
