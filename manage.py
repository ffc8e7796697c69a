#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    from django.core.management import execute_from_command_line

    from console.exceptions import ConfigurationError

    try:
        execute_from_command_line(sys.argv)
    except ConfigurationError as exc:
        sys.stderr.write(f"The console cannot start: {exc}\n")
        sys.exit(1)
    finally:
        from console.cli import end_without_final_collections

        end_without_final_collections()


if __name__ == "__main__":
    main()
