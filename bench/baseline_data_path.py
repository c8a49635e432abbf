"""The two baselines bench/data_path.py runs beside train.py: a minimal Lightning script and
a plain PyTorch loop.

    baseline_data_path.py OUT.json lightning|plain|dataloader digits|synthetic EPOCHS [HIDDEN,HIDDEN,...]

Both train train.py's default MLP (256-128, dropout 0.1, Adam 1e-3) on the same split
(Aegis's data modules build it, outside the timed span), with a validation pass at every
epoch end, and write steps/s from the first training step to the end of training.

- ``lightning``: what a user writes first: ``DataLoader(TensorDataset)`` with shuffle, a
  default ``Trainer`` (which keeps a checkpoint of the latest epoch), no logger.
- ``plain``: the limit: a loop that batches by tensor indexing (one ``randperm`` per
  epoch), no framework, no checkpoint, no per-step metric.
- ``dataloader``: the same loop drawing its batches from ``DataLoader(TensorDataset, shuffle=True)``
  (per-sample ``__getitem__`` and ``default_collate``): what most hand-written loops use.

- ``lightning-bare``: the ``lightning`` script with no validation, no checkpoint and no
  per-step ``self.log`` (``enable_checkpointing=False``, no val loader): Lightning's loop
  alone, what issue 24 compared the default run's training phase with.

HIDDEN (default ``256,128``, train.py's MLP) sets the hidden widths, for bench/step_rate.py's
``model.hidden_dims=[256,256]``.
"""

import json
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn


HIDDEN = [256, 128]


def mlp(input_width: int, num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in HIDDEN:
        layers += [nn.Linear(input_width, width), nn.ReLU(), nn.Dropout(0.1)]
        input_width = width
    return nn.Sequential(*layers, nn.Linear(input_width, num_classes))


def splits(data: str):
    from aegis.training.data import DigitsDataModule, SyntheticDataModule

    module = DigitsDataModule() if data == "digits" else SyntheticDataModule(num_samples=200000, batch_size=256)
    module.setup()
    return module.batch_size, {name: split.tensors for name, split in module._splits.items()}


def plain(data: str, epochs: int, dataloader: bool = False) -> dict:
    batch_size, tensors = splits(data)
    (train_x, train_y), (val_x, val_y) = tensors["train"], tensors["val"]
    torch.manual_seed(42)
    model = mlp(train_x[0].numel(), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if dataloader:
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(train_x, train_y), batch_size=batch_size, shuffle=True)

        def batches():
            return iter(loader)
    else:
        def batches():
            return ((train_x[idx], train_y[idx]) for idx in torch.randperm(len(train_x)).split(batch_size))
    steps, first, first_cpu = 0, time.time(), time.process_time()
    for _ in range(epochs):
        model.train()
        for x, y in batches():
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(val_x.split(batch_size),
                                                                                   val_y.split(batch_size)))
    end, end_cpu = time.time(), time.process_time()
    return {"train_steps": steps, "train_steps_per_s": steps / (end - first), "val/acc": correct / len(val_x),
            "train_steps_per_cpu_s": steps / (end_cpu - first_cpu)}


def lightning(data: str, epochs: int, bare: bool = False) -> dict:
    import lightning.pytorch as L
    from torch.utils.data import DataLoader, TensorDataset

    class Timing(L.Callback):
        first = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if self.first is None:
                self.first, self.first_step, self.first_cpu = time.time(), trainer.global_step, time.process_time()

        def on_train_end(self, trainer, module):
            self.end, self.end_step, self.end_cpu = time.time(), trainer.global_step, time.process_time()

    class Module(L.LightningModule):
        def __init__(self, width):
            super().__init__()
            self.net = mlp(width, 10)

        def training_step(self, batch, i):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            if not bare:
                self.log("train/loss", loss)
            return loss

        def validation_step(self, batch, i):
            x, y = batch
            self.log("val/acc", (self.net(x).argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    batch_size, tensors = splits(data)
    L.seed_everything(42, verbose=False)
    train = DataLoader(TensorDataset(*tensors["train"]), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(*tensors["val"]), batch_size=batch_size)
    timing = Timing()
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=root, callbacks=[timing],
                            enable_checkpointing=not bare)
        trainer.fit(Module(tensors["train"][0][0].numel()), train, None if bare else val)
    steps = timing.end_step - timing.first_step
    return {"train_steps": steps, "train_steps_per_s": steps / (timing.end - timing.first),
            "train_steps_per_cpu_s": steps / (timing.end_cpu - timing.first_cpu)}


if __name__ == "__main__":
    out, arm, data, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if len(sys.argv) > 5:
        HIDDEN[:] = [int(width) for width in sys.argv[5].split(",")]
    if arm.startswith("lightning"):
        result = lightning(data, epochs, bare=arm == "lightning-bare")
    else:
        result = plain(data, epochs, dataloader=arm == "dataloader")
    with open(out, "w") as handle:
        json.dump(result, handle)
