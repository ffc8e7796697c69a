"""The console's own scripts listen with addEventListener only, and each loads after the shared
helpers (static/console/console.js) when it uses them.

Inline handlers (``onclick="…"``) are refused by the Content-Security-Policy; a handler property
(``button.onclick = …``) runs, but a second assignment silently replaces the first and the README
asks for ``addEventListener`` everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles import finders
from django.forms import Widget

HELPERS = "console/console.js"
HANDLER_PROPERTY = re.compile(r"\.on[a-z]+\s*=(?!=)")
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_SRC = re.compile(r"""<script\s[^>]*src="\{% static ['"]([^'"]+)['"] %\}""")
OUR_APPS = ("console", "chatbot", "tagging", "wecom")


def ours(path: Path) -> bool:
    """A file of this project: not a vendored library, not an installed package's."""
    parts = path.relative_to(settings.BASE_DIR).parts
    return "vendor" not in parts and "site-packages" not in parts and ".venv" not in parts


def our_scripts() -> dict[str, Path]:
    """Our JavaScript files by their static path, found the way Django serves them."""
    scripts = {}
    for finder in finders.get_finders():
        for name, storage in finder.list([]):
            path = Path(storage.path(name))
            if name.endswith(".js") and settings.BASE_DIR in path.parents and ours(path):
                scripts[name.replace("\\", "/")] = path
    return scripts


def our_templates() -> list[Path]:
    folders = [settings.BASE_DIR / "templates"]
    folders += [settings.BASE_DIR / app / "templates" for app in OUR_APPS]
    return [path for folder in folders for path in sorted(folder.rglob("*.html"))]


def uses_helpers(script: str) -> bool:
    path = None if script == HELPERS else finders.find(script)
    return bool(path) and "consoleKit" in Path(path).read_text(encoding="utf-8")


def test_no_script_assigns_an_event_handler_property():
    scripts = our_scripts()
    assert {"console/jobs.js", "chatbot/answer_editor.js", "tagging/strategy_tree.js"} <= set(
        scripts
    )
    assignments = [
        f"{name}:{number}: {line.strip()}"
        for name, path in scripts.items()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if HANDLER_PROPERTY.search(line)
    ]
    assert not assignments, "use addEventListener:\n" + "\n".join(assignments)


def test_no_template_has_an_inline_handler_or_a_javascript_url():
    templates = our_templates()
    assert any(path.name == "answer_editor.html" for path in templates)
    found = [
        f"{path.relative_to(settings.BASE_DIR)}:{number}"
        for path in templates
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if INLINE_HANDLER.search(line) or "javascript:" in line.lower()
    ]
    assert not found, "inline handlers are refused by the Content-Security-Policy:\n" + "\n".join(
        found
    )


def test_templates_load_the_helpers_before_the_scripts_that_use_them():
    checked = []
    for path in our_templates():
        loaded = SCRIPT_SRC.findall(path.read_text(encoding="utf-8"))
        for index, script in enumerate(loaded):
            if uses_helpers(script):
                checked.append(script)
                assert HELPERS in loaded[:index], f"{path.name} loads {script} without {HELPERS}"
    assert "console/jobs.js" in checked


def widget_classes(base: type = Widget) -> list[type]:
    found = []
    for subclass in base.__subclasses__():
        if subclass.__module__.split(".")[0] in OUR_APPS:
            found.append(subclass)
        found.extend(widget_classes(subclass))
    return found


def test_form_and_admin_media_load_the_helpers_before_the_scripts_that_use_them():
    medias = [
        (type(model_admin).__name__, model_admin.media)
        for model_admin in admin.site._registry.values()
    ]
    medias += [(widget.__name__, widget().media) for widget in widget_classes()]
    checked = []
    for owner, media in medias:
        loaded = [str(script) for script in media._js]
        for index, script in enumerate(loaded):
            if uses_helpers(script):
                checked.append(script)
                assert HELPERS in loaded[:index], (
                    f"{owner}'s Media loads {script} without {HELPERS}"
                )
    assert "chatbot/answer_editor.js" in checked
