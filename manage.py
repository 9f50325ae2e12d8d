#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "s3av.settings")
    from django.core.management import execute_from_command_line

    from s3av.startup import run_manage

    run_manage(sys.argv, execute_from_command_line)


if __name__ == "__main__":
    main()
