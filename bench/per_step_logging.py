"""The shipped MLP as it logged before issue 24's epoch sums: two ``self.log`` calls every
step, Lightning accumulating the epoch means. bench/step_rate.py's ``aegis-before`` arm
trains it (``model._target_=per_step_logging.PerStepLoggingMLP``), and
tests/test_epoch_metrics.py checks that the shipped module's figures equal its figures."""

import torch.nn.functional as F

from aegis.training.models import MLPClassifier


class PerStepLoggingMLP(MLPClassifier):
    def _step(self, batch, stage):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        training = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=training, on_epoch=True, sync_dist=not training,
                 batch_size=len(y), prog_bar=True)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, sync_dist=True,
                 batch_size=len(y), prog_bar=not training)
        return loss
