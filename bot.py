"""The Voiso security bot: ``python bot.py --help``. The command line lives in
voisobot/cli.py (``voisobot`` once installed), the composition root in voisobot/runtime.py."""

import sys

from voisobot.cli import main

if __name__ == "__main__":
    sys.exit(main())
