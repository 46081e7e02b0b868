"""`the-eye` and `python -m the_eye`: the command line, or, when a dependency it needs is not
installed (`pip install the-eye` is the SDK alone), the command that installs it."""

from __future__ import annotations

import sys

from the_eye.extras import SERVER_MODULES, MissingExtra, install_hint, missing


def main() -> None:
    """Run the command line once the server's dependencies are known to be importable."""
    absent = missing(SERVER_MODULES)
    if absent:
        sys.exit(
            f"The Eye's server needs its dependencies: {install_hint('server')}\n"
            f"(not installed: {', '.join(absent)})"
        )
    from the_eye.cli import main as cli

    try:
        cli()
    except MissingExtra as exc:  # a PostgreSQL or Redis URL without its driver
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
