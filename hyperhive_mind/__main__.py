"""`hive-mind`: the manager's entry point; it says plainly that it is not built yet."""

import sys


def main() -> None:
    """Console-script entry point."""
    sys.stderr.write("hive-mind: the manager agent is not built yet; see the project's issues\n")
    raise SystemExit(2)


if __name__ == "__main__":
    main()
