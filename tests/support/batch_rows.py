"""A callback for tests/test_batches.py's DDP test: each rank writes the training rows it
saw (each row's first three features, rounded, as one string), per epoch, to ``out_dir/rank<N>.json``."""

import json
from pathlib import Path

import lightning.pytorch as L


def row_key(row: list) -> str:
    return ",".join(f"{v:.5f}" for v in row[:3])


class RowsSeen(L.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.seen: dict[int, list[float]] = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        rows = [row_key(r) for r in batch[0].tolist()]
        self.seen.setdefault(trainer.current_epoch, []).extend(rows)

    def on_train_end(self, trainer, module):
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))
