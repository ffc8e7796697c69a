"""Manage platform credentials from scripts.

    python manage.py credential set wecom "Main corp" corp_id=ww0123456789abcdef \\
        secret=env:WECOM_SECRET callback_token=env:WECOM_CB_TOKEN \\
        callback_encoding_aes_key=env:WECOM_CB_AES_KEY
    python manage.py credential set oa "Brand OA" appid=wx0123456789abcdef secret=env:OA_SECRET
    python manage.py credential set chatbot "Help bot" appid=... token=env:BOT_TOKEN \\
        encoding_aes_key=env:BOT_AES_KEY managerid=...
    python manage.py credential list
    python manage.py credential demo      # the sandbox's demo credentials, for `make run`
    python manage.py credential test wecom "Main corp"

A value written ``env:VAR`` is read from the environment variable VAR, so that secrets stay out
of shell history and process lists. Secrets are never printed, only their last four characters.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation
from django.utils.translation import gettext as _

from console.audit import Actor
from console.cli import terminal_language
from console.fields import secret_field_names
from wecom.services import (
    CREDENTIAL_KINDS,
    credential_set,
    credential_test_connection,
    demo_credentials_ensure,
)


def _parse_pairs(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(_("“%(pair)s” is not key=value.") % {"pair": pair})
        if key in values:
            raise CommandError(_("“%(key)s” is given twice.") % {"key": key})
        values[key] = value
    return values


def _describe(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "\n".join(
            f"  {field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
        )
    return "\n".join(f"  {message}" for message in error.messages)


class Command(BaseCommand):
    help = "Create, update, list and test platform credentials (wecom, oa, chatbot)."

    def add_arguments(self, parser: Any) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        set_parser = commands.add_parser(
            "set", help="create or update a credential: KIND NAME key=value ..."
        )
        set_parser.add_argument("kind", choices=sorted(CREDENTIAL_KINDS))
        set_parser.add_argument("name")
        set_parser.add_argument(
            "pairs",
            nargs="*",
            metavar="key=value",
            help="wecom: corp_id secret agent_id callback_token callback_encoding_aes_key; "
            "oa: appid secret; "
            "chatbot: appid token encoding_aes_key managerid; all: rate_limit. "
            "A value env:VAR is read from the environment.",
        )
        commands.add_parser("list", help="list the credentials")
        commands.add_parser(
            "demo", help="register the sandbox's demo credentials (what `make run` does)"
        )
        test_parser = commands.add_parser("test", help="test a credential's connection")
        test_parser.add_argument("kind", choices=sorted(CREDENTIAL_KINDS))
        test_parser.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        with translation.override(terminal_language()):
            getattr(self, f"_{options['action']}")(options)

    def _set(self, options: dict[str, Any]) -> None:
        values = _parse_pairs(options["pairs"])
        try:
            result = credential_set(
                kind=options["kind"],
                name=options["name"],
                values=values,
                actor=Actor.command_line(command="credential set"),
            )
        except ValidationError as error:
            raise CommandError(_("Nothing was saved:") + "\n" + _describe(error)) from None
        names = {"kind": options["kind"], "name": result.credential}
        if result.created:
            self.stdout.write(self.style.SUCCESS(_("Created %(kind)s “%(name)s”.") % names))
        elif result.changed:
            self.stdout.write(
                self.style.SUCCESS(
                    _("Updated %(kind)s “%(name)s”: %(fields)s.")
                    % {**names, "fields": ", ".join(result.changed)}
                )
            )
        else:
            self.stdout.write(_("%(kind)s “%(name)s” already had these values.") % names)

    def _list(self, options: dict[str, Any]) -> None:
        for kind, spec in CREDENTIAL_KINDS.items():
            secrets = secret_field_names(spec.model)
            for credential in spec.model._default_manager.all():
                masked = " ".join(f"{name}={getattr(credential, name) or '-'}" for name in secrets)
                status = {None: _("not tested"), True: _("ok"), False: _("failing")}[
                    credential.last_check_ok
                ]
                self.stdout.write(f"{kind:8} {credential.name:30} {masked}  [{status}]")

    def _demo(self, options: dict[str, Any]) -> None:
        results = demo_credentials_ensure(actor=Actor.command_line(command="credential demo"))
        for result in results:
            self.stdout.write(
                _("Registered the sandbox credential “%(name)s”.") % {"name": result.credential}
            )

    def _test(self, options: dict[str, Any]) -> None:
        spec = CREDENTIAL_KINDS[options["kind"]]
        try:
            name = spec.model._meta.get_field("name").clean(options["name"], None)
        except ValidationError:
            credential = None  # a name no credential can have
        else:
            credential = spec.model._default_manager.filter(name=name).first()
        if credential is None:
            raise CommandError(
                _("There is no %(kind)s credential “%(name)s”.")
                % {"kind": options["kind"], "name": options["name"]}
            )
        check = credential_test_connection(
            credential=credential, actor=Actor.command_line(command="credential test")
        )
        if not check.ok:
            raise CommandError(check.message)
        self.stdout.write(self.style.SUCCESS(check.message))
