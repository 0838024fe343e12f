"""The `emailsrc` command and `python -m emailsrc`.

The command line's modules (Typer, Rich, httpx, the formats) take a moment to import; a
Ctrl-C in that moment must end in one line like any other, not a traceback, so they are
imported here, inside the guard, rather than by the console script itself.
"""

import sys


def main() -> None:
    try:
        from .app import main as run
    except KeyboardInterrupt:
        sys.stderr.write("emailsrc: interrupted\n")
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
