"""The hand-written Lightning script that bench/training_overhead.py compares train.py with.

Same data (digits, same stratified split), same MLP, optimizer, batch size and Trainer
settings as `python train.py logger=none`, written the way a user would without Aegis.
Writes first-step time and steps/s to the JSON path given as argv[1]. With
`--last-every-epoch` it also keeps a full checkpoint of the latest epoch (a second
ModelCheckpoint without a monitor, Lightning's way to do it), which is the guarantee
Aegis's `last.ckpt` gives: the like-for-like arm of the comparison.
"""

import json
import sys
import time

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Timing(L.Callback):
    first = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.first is None:
            self.first, self.first_step = time.time(), trainer.global_step

    def on_train_end(self, trainer, module):
        self.end, self.end_step = time.time(), trainer.global_step


class MLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))

    def step(self, batch, stage):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, batch_size=len(y), prog_bar=True)
        self.log(f"{stage}/acc", (logits.argmax(1) == y).float().mean(), on_epoch=True, batch_size=len(y))
        return loss

    def training_step(self, batch, i):
        return self.step(batch, "train")

    def validation_step(self, batch, i):
        self.step(batch, "val")

    def test_step(self, batch, i):
        self.step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def loaders():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, 1, 8, 8)
    rest_x, test_x, rest_y, test_y = train_test_split(x, y, test_size=0.2, random_state=1234, stratify=y)
    train_x, val_x, train_y, val_y = train_test_split(rest_x, rest_y, test_size=0.1 / 0.8, random_state=1234,
                                                      stratify=rest_y)

    def make(a, b, shuffle):
        return DataLoader(TensorDataset(torch.from_numpy(a), torch.from_numpy(b)), batch_size=64, shuffle=shuffle)

    return make(train_x, train_y, True), make(val_x, val_y, False), make(test_x, test_y, False)


def main(out_path, last_every_epoch=False):
    L.seed_everything(42, workers=True, verbose=False)
    train, val, test = loaders()
    timing = Timing()
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, logger=False, log_every_n_steps=10,
                        enable_progress_bar=False, default_root_dir="/tmp/aegis-bench-baseline",
                        callbacks=[timing, ModelCheckpoint(dirpath="/tmp/aegis-bench-baseline/ckpt",
                                                           monitor="val/acc", mode="max", save_last=True),
                                   *([ModelCheckpoint(dirpath="/tmp/aegis-bench-baseline/latest",
                                                      filename="latest", enable_version_counter=False)]
                                     if last_every_epoch else [])])
    model = MLP()
    trainer.fit(model, train, val)
    result = trainer.test(model, test, ckpt_path="best", verbose=False)[0]
    steps = timing.end_step - timing.first_step
    with open(out_path, "w") as handle:
        json.dump({"first_step_unix": timing.first, "train_steps": steps,
                   "train_steps_per_s": steps / (timing.end - timing.first), "test/acc": result["test/acc"]}, handle)


if __name__ == "__main__":
    main(sys.argv[1], last_every_epoch="--last-every-epoch" in sys.argv[2:])
