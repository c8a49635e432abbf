"""The one entrypoint: `python train.py [overrides]`.

Composes conf/train.yaml and hands the config to the launcher it names. Importing
this file (and composing, validating, rendering) never imports torch or lightning.
"""

import sys

import hydra
from omegaconf import DictConfig

from aegis.cli import check_overrides, one_line_errors, prepare, run
from aegis.config.compose_once import compose_once


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    run(cfg)


def _more_problems(exc: BaseException) -> list[str]:
    """Every problem after the first composition error (aegis.config.collect)."""
    from aegis.config.collect import composition_problems

    return composition_problems(sys.argv[1:], "train", exc)


if __name__ == "__main__":
    from aegis.config.argv import misplaced_flags

    if (misplaced := misplaced_flags(sys.argv[1:])) is not None:  # argparse would only say "unrecognized"
        from aegis.redact import mask_credentials

        print(f"Error: {mask_credentials(misplaced)}", file=sys.stderr)
        sys.exit(2)
    check_overrides(sys.argv[1:])
    prepare()
    with compose_once(), one_line_errors(more=_more_problems):
        main()
