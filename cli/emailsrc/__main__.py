"""`python -m emailsrc`: the same command line as the `emailsrc` script."""

from .app import main

if __name__ == "__main__":
    main()
