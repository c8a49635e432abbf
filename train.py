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


if __name__ == "__main__":
    check_overrides(sys.argv[1:])
    prepare()
    with compose_once(), one_line_errors():
        main()
