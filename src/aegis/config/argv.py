"""Hydra's flags (``-m``, ``--cfg job``, ``-p model``) go before the overrides.

Hydra's command line is argparse with one positional list of overrides, so
``python train.py trainer=smoke -m model.lr=1e-3,2e-3`` ended in argparse's usage text and
"unrecognized arguments: model.lr=1e-3,2e-3", which does not say the fix: the overrides
after a flag are not read at all. :func:`misplaced_flags` says it in one sentence, with the
command in the order Hydra reads.
"""

from __future__ import annotations

import shlex
from collections import Counter
from typing import Optional


def misplaced_flags(argv: list[str]) -> Optional[str]:
    """The sentence for overrides stranded after a flag, or for two flags that each pick what
    train.py does (``-m --cfg job``: Hydra's ValueError traceback), or None."""
    try:  # Hydra's own command-line parser, private (docs/internals.md)
        from hydra._internal.utils import get_args_parser

        args, stranded = get_args_parser().parse_known_args(argv)
    except BaseException:  # argparse exits on a bad flag: its own message says which
        return None
    modes = [flag for flag, given in (("--run", args.run), ("-m (--multirun)", args.multirun), ("--cfg", args.cfg),
                                      ("--info", args.info), ("--shell-completion", args.shell_completion)) if given]
    if len(modes) > 1:  # Hydra raises a ValueError with a traceback
        return (f"{' and '.join(modes)} were both given, but each picks what train.py does: expected one of them "
                "(--cfg job prints the config a run would use, without -m).")
    if not stranded or any(item.startswith("-") for item in stranded):
        return None  # an unknown flag: argparse's message names it
    positional = Counter(list(args.overrides) + stranded)
    flags = []
    for item in argv:
        if positional[item] > 0:
            positional[item] -= 1
        else:
            flags.append(item)
    ordered = " ".join(shlex.quote(item) for item in [*flags, *args.overrides, *stranded])
    flagged = " ".join(f for f in flags if f.startswith("-"))
    return (f"{' '.join(stranded)} comes after {flagged}, where Hydra does not read overrides: expected "
            f"{flagged} before every override, python train.py {ordered}.")
