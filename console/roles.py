"""The console's roles, as Django groups.

A role is a set of grants over apps; its group holds exactly the permissions those grants name
at the time :func:`roles_ensure` runs (after every migrate and at `make run`), so models added by
later migrations join the roles that cover their app, and a permission added by hand to a role
group is taken away again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

ALL_ACTIONS = None


@dataclass(frozen=True)
class Grant:
    app_label: str
    # None: every permission of the app, custom ones included; otherwise Django's default
    # actions ("view", "add", "change", "delete").
    actions: tuple[str, ...] | None = ALL_ACTIONS
    model: str | None = None

    def query(self) -> Q:
        query = Q(content_type__app_label=self.app_label)
        if self.model:
            query &= Q(content_type__model=self.model)
        if self.actions is not None:
            query &= Q(codename__regex=r"^(" + "|".join(self.actions) + r")_")
        return query


@dataclass(frozen=True)
class Role:
    key: str
    group_name: str
    label: Promise
    description: Promise
    grants: tuple[Grant, ...]


MARKETING_EDITOR = Role(
    key="marketing_editor",
    group_name="Marketing editor",
    label=_("Marketing editor"),
    description=_(
        "Edits strategies, tag groups, tags, chatbot skills and replies; starts bulk jobs and "
        "pulls from the platforms. Cannot see platform credentials."
    ),
    grants=(
        Grant("tagging"),
        Grant("chatbot"),
        # Background jobs: follow, pause, resume and cancel them; they are started elsewhere.
        Grant("console", actions=("view", "change"), model="job"),
        Grant("console", actions=("view",), model="jobitemfailure"),
    ),
)
CREDENTIAL_ADMIN = Role(
    key="credential_admin",
    group_name="Credential admin",
    label=_("Credential admin"),
    description=_("Manages the platform credentials and tests their connections."),
    grants=(Grant("wecom"),),
)
AUDITOR = Role(
    key="auditor",
    group_name="Auditor",
    label=_("Auditor"),
    description=_("Reads everything, the change history included; changes nothing."),
    grants=tuple(
        Grant(app_label, actions=("view",))
        for app_label in ("tagging", "chatbot", "wecom", "console", "admin", "auth", "django_q")
    ),
)
ROLES: tuple[Role, ...] = (MARKETING_EDITOR, CREDENTIAL_ADMIN, AUDITOR)


def role_permissions(role: Role) -> list[Permission]:
    query = Q(pk__in=[])
    for grant in role.grants:
        query |= grant.query()
    return list(Permission.objects.filter(query).select_related("content_type"))


@transaction.atomic
def roles_ensure() -> dict[str, Group]:
    """Create or correct the role groups. Safe to run any number of times."""
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    groups = {}
    for role in ROLES:
        group, _created = Group.objects.get_or_create(name=role.group_name)
        group.permissions.set(role_permissions(role))
        groups[role.key] = group
    return groups


def ensure_roles_after_migrate(**kwargs: Any) -> None:
    roles_ensure()
