"""`python -m autotrain.cli.autotrain ...`: the module of aitraining's console script (`aitraining =
autotrain.cli.autotrain:main`), with aitraining's defaults; `--defaults autotrain` (or the `autotrain` command)
gives AutoTrain's."""

import sys

from autotrain_unsloth.cli import main as _main


def main(argv=None) -> int:
    return _main(argv, defaults="aitraining")


if __name__ == "__main__":
    sys.exit(main())
