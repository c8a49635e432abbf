"""Classifiers as LightningModules.

``ClassifierModule`` holds what every classifier shares (loss, accuracy, optimizer,
what gets logged under which name); subclasses only build the network. A user's own
LightningModule works too: point ``model._target_`` at it.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn

from aegis.training.epoch_metrics import CHECKPOINT_KEY, epoch_sums, logs_this_step, put_first


class ClassifierModule(L.LightningModule):
    """Subclasses spell out every argument in their own ``__init__`` (no ``**kwargs``), so
    a misspelt config key fails the signature check before anything is built."""

    #: Every metric the module logs. Read from this source (not imported) by
    #: ``aegis.config.validation`` so ``checkpoint.monitor`` is checked before a run starts;
    #: a user's LightningModule may declare its own the same way.
    LOGGED_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc")

    def __init__(self) -> None:
        super().__init__()
        # Collects the subclass's __init__ arguments. logger=False: Aegis logs the whole
        # resolved config once, rather than each module's share of it.
        self.save_hyperparameters(logger=False)
        hp = self.hparams
        self.net = self.build_net(tuple(hp.input_shape), hp.num_classes)
        self.epoch_sums = epoch_sums()

    def build_net(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        """Loss and accuracy go to the epoch's sums, not to ``self.log`` each step
        (aegis.training.epoch_metrics says why). The step loss, on the training steps the
        loggers write, stays rank-local: syncing it would add a collective to every step;
        the epoch means are synced once per epoch."""
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        if self._trainer is not None:  # outside a fit or an evaluation nothing would read them
            self.epoch_sums[stage].add(loss, logits, y)
            if stage == "train" and logs_this_step(self._trainer):
                self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=len(y), prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def setup(self, stage: str) -> None:
        for sums in self.epoch_sums.values():
            sums.reset()
        put_first(self.trainer)

    # Lightning calls these after the non-monitoring callbacks' own: they log only what the
    # front callback has not (it was taken out of the trainer's list).
    def on_train_epoch_end(self) -> None:
        self.epoch_sums["train"].log_epoch(self)

    def on_validation_epoch_end(self) -> None:
        self.epoch_sums["val"].log_epoch(self)

    def on_test_epoch_end(self) -> None:
        self.epoch_sums["test"].log_epoch(self)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self.epoch_sums["train"].state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if CHECKPOINT_KEY in checkpoint:  # not in checkpoints from before the sums
            self.epoch_sums["train"].load_state_dict(checkpoint[CHECKPOINT_KEY], self.device)

    def predict_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).argmax(dim=1)

    def configure_optimizers(self):
        hp = self.hparams
        params = self.parameters()
        if hp.optimizer == "sgd":
            return torch.optim.SGD(params, lr=hp.lr, momentum=0.9, weight_decay=hp.weight_decay)
        if hp.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        return torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)


class MLPClassifier(ClassifierModule):
    """Fully connected layers over the flattened input."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_dims: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        name: Optional[str] = None,
    ) -> None:
        super().__init__()

    def build_net(self, input_shape, num_classes):
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for hidden in self.hparams.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(self.hparams.dropout)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        return nn.Sequential(*layers)


class CNNClassifier(ClassifierModule):
    """Conv blocks (conv, ReLU, 2x2 max-pool while the map is at least 4 wide), then a head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        hidden_dim: int = 128,
        dropout: float = 0.2,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        optimizer: str = "adamw",
        name: Optional[str] = None,
    ) -> None:
        super().__init__()

    def build_net(self, input_shape, num_classes):
        hp = self.hparams
        in_channels, height, width = input_shape
        layers: list[nn.Module] = []
        for out_channels in hp.channels:
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU()]
            if min(height, width) >= 4:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            in_channels = out_channels
        layers += [
            nn.Flatten(),
            nn.Linear(in_channels * height * width, hp.hidden_dim),
            nn.ReLU(),
            nn.Dropout(hp.dropout),
            nn.Linear(hp.hidden_dim, num_classes),
        ]
        return nn.Sequential(*layers)
