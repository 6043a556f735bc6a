"""``python -m sdapi`` / the ``sdapi`` console script."""

from sdapi.cli import main

if __name__ == "__main__":
    main()
