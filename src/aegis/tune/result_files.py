"""Ray Tune's per-trial result files (``progress.csv``, ``result.json``), continued across a resume.

Ray Tune writes a trial's result files in the driver's staging dir and copies them to the
sweep dir; a resumed search's driver starts from an empty staging dir and copies them back
only for a trial Ray restores from a checkpoint of its own. A trial the interrupt caught
after Ray recorded a result but before Ray fetched that report's checkpoint is restarted
by Ray "from scratch", while the trial itself continues from the epoch Ray recorded
(``aegis.tune.trial``): Ray's copy would then start a new file and drop the epochs before
it, from the plot, ASHA's replayed rungs and the records. These loggers copy the files
back whenever the sweep dir has them; an epoch written twice counts once where they are
read (``aegis.tune.numbering.reported``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

log = logging.getLogger("aegis.tune")


class _ContinuedFiles:
    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        if trial.checkpoint:
            super()._restore_from_remote(file_name, trial)  # type: ignore[misc]
            return
        import pyarrow.fs

        local = Path(trial.local_path, file_name)
        remote = Path(trial.storage.trial_fs_path, file_name).as_posix()
        if local.exists() or local.resolve().as_posix() == Path(remote).resolve().as_posix():
            return  # written this session already (or the sweep dir is the staging dir)
        filesystem = trial.storage.storage_filesystem
        if filesystem.get_file_info(remote).type != pyarrow.fs.FileType.File:
            return  # a trial that never reported
        try:
            pyarrow.fs.copy_files(remote, local.as_posix(), source_filesystem=filesystem)
        except OSError as exc:
            log.warning("Could not continue %s of trial %s (%s); it starts a new one.", file_name, trial, exc)


class ContinuedCSVLogger(_ContinuedFiles, CSVLoggerCallback):
    """``progress.csv``, continued for a trial Ray restarts without a checkpoint."""


class ContinuedJsonLogger(_ContinuedFiles, JsonLoggerCallback):
    """``result.json``, continued for a trial Ray restarts without a checkpoint."""
