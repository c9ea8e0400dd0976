"""``python -m nbtoolkit`` = ``nbtk``."""

from nbtoolkit.cli import main

if __name__ == "__main__":
    main()
