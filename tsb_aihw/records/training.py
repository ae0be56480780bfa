"""What training one checkpointed model took: saved in its checkpoint's meta, ``models.json`` and every results
file's ``training`` (by checkpoint name)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tsb_aihw.records.base import Record, load_record
from tsb_aihw.utils.schema import spec

#: one epoch of a training run (epoch, train_loss, train_acc, lr, val_acc, seconds); ints stay ints on write
HistoryRow = dict[str, int | float | None]


@dataclass(frozen=True, kw_only=True)
class TrainingMeta(Record):
    """One trained model: its wall time and, as far as its kind records them, budget, training noise, precision
    and per-epoch history; for an early backbone annealed from (b)'s stop, the stop's plan and file; for a model
    taken from another run (``--models-from``), the file it came from. Fields in the order the checkpoints
    always wrote them; a field a kind never had is left out (older files lack ``precision``; sweeps keep only the
    time)."""

    train_time_s: float = spec(lo=0.0)
    epochs: int | None = spec(None, lo=0, omit_none=True)  # backbones only
    noise_std: float | None = spec(None, lo=0.0, omit_none=True)
    precision: str | None = spec(None, omit_none=True)
    history: list[HistoryRow] | None = spec(None, omit_none=True)  # backbones only
    stop: dict[str, int | float] | None = spec(None, omit_none=True)  # budget, stop_step, anneal_steps, ...
    stop_file: str | None = spec(None, omit_none=True)
    adopted_from: str | None = spec(None, omit_none=True)

    def val_gain_over_last(self, fraction: float = 0.1) -> tuple[float, int] | None:
        """How much validation accuracy the last ``fraction`` of the epochs added (last epoch's minus the one
        before that tail), and the tail's length in epochs: issue 34's convergence check ((b) has converged when
        its last 10% adds < 0.3 pp). None without a per-epoch validation history of at least two epochs."""
        accs = self.val_accuracies()
        if accs is None or len(accs) < 2:
            return None
        tail = min(len(accs) - 1, max(1, round(fraction * len(accs))))
        return accs[-1] - accs[-1 - tail], tail

    def val_accuracies(self) -> list[float] | None:
        """The per-epoch validation accuracies; None without a history or where an epoch lacks one."""
        accs = [row.get("val_acc") for row in self.history or []]
        values = [float(a) for a in accs if isinstance(a, (int, float))]
        return values if accs and len(values) == len(accs) else None

    def time_only(self) -> TrainingMeta:
        """What a sweep records of it (its results compare points, not trainings)."""
        return TrainingMeta(train_time_s=self.train_time_s)


def training_meta(data: Any, where: str) -> TrainingMeta:
    """A checkpoint's or export's meta as a record (a damaged one is one line naming ``where``)."""
    return load_record(TrainingMeta, data, where)
