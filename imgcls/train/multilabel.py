"""Training a multi-label model: label sets as multi-hot targets, BCE or asymmetric loss,
and validation metrics (mAP, F1 and exact match at thresholds chosen on the split).

Batch augmentations (mixup, cutmix) already mix float N x classes targets, so mixed
multi-hot vectors give each class the share of its image in the mix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data.cache import DecodedImages
from ..errors import ConfigError
from ..metrics import MetricAccumulator
from ..multilabel import choose_thresholds, multi_hot, summary
from .config import TrainConfig

MAX_POS_WEIGHT = 100.0  # a class seen once in 10,000 images must not swamp the others


def decode_label_sets(samples: Sequence[tuple], num_classes: int,
                      decode: Callable[[list], DecodedImages]) -> DecodedImages:
    """Decode multi-label ``samples``; the images' labels become a float32 multi-hot matrix.

    Decoding sees each sample's position as its label, so whatever it skips, the
    label sets of the images it kept are picked by position.
    """
    images = decode([(path, i) for i, (path, _) in enumerate(samples)])
    hot = multi_hot([labels for _, labels in samples], num_classes)
    images.labels = hot[np.asarray(images.labels, dtype=np.intp)]
    return images


def check_multilabel_config(config: TrainConfig, distributed: bool) -> None:
    """Options that a multi-label run cannot honour fail before any work."""
    if config.sampler == "balanced":
        raise ConfigError("--sampler balanced draws each class equally often, which a "
                          "multi-label image (several classes, or none) does not allow.",
                          "Use --class-weights auto to weight rare classes' positives.")
    if config.label_smoothing:
        raise ConfigError("--label-smoothing is for multi-class models.",
                          "Leave it out for a multi-label run.")
    if distributed:
        raise ConfigError("Multi-label training under torchrun is not supported yet.",
                          "Train on one process (one GPU or the CPU).")


class MultiLabelLoss:
    """Per-class sigmoid loss: binary cross-entropy, or the asymmetric loss of Ridnik et
    al. 2021 (``asl``: negatives down-weighted by gamma 4 and shifted by a 0.05 margin,
    for label sets with far more absent than present classes). ``pos_weight`` scales
    each class's positives (``--class-weights auto``: negatives / positives)."""

    def __init__(self, kind: str, pos_weight: torch.Tensor | None = None,
                 gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05) -> None:
        self.kind, self.pos_weight = kind, pos_weight
        self.gamma_neg, self.gamma_pos, self.clip = gamma_neg, gamma_pos, clip

    @classmethod
    def build(cls, config: TrainConfig, train_labels: np.ndarray,
              device: torch.device) -> MultiLabelLoss:
        weight = None
        if config.class_weights == "auto":
            weight = torch.from_numpy(positive_weights(train_labels)).to(device)
        return cls(config.multilabel_loss, weight)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """Multi-hot targets are already float vectors."""
        return labels.float()

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets,
                                                      pos_weight=self.pos_weight)
        p = torch.sigmoid(logits)
        p_neg = (p - self.clip).clamp(min=0)  # easy negatives below the margin cost nothing
        pos = targets * torch.log(p.clamp(min=1e-8)) * (1 - p) ** self.gamma_pos
        if self.pos_weight is not None:
            pos = pos * self.pos_weight
        neg = (1 - targets) * torch.log((1 - p_neg).clamp(min=1e-8)) * p_neg ** self.gamma_neg
        return -(pos + neg).sum(1).mean() / logits.shape[1]


def positive_weights(labels: np.ndarray) -> np.ndarray:
    """negatives / positives per class, within [1, MAX_POS_WEIGHT]; 1 without positives."""
    positives = labels.sum(0)
    negatives = len(labels) - positives
    ratio = np.divide(negatives, positives, out=np.ones_like(positives), where=positives > 0)
    return np.clip(ratio, 1.0, MAX_POS_WEIGHT).astype(np.float32)


def correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Images predicted right: the argmax, or (multi-label) the whole set at 0.5."""
    if labels.dim() == 2:
        return ((logits > 0) == (labels > 0.5)).all(1).sum()
    return (logits.argmax(1) == labels).sum()


@dataclass
class MultiLabelAccumulator:
    """Validation probabilities and targets of an epoch; thresholds are chosen on them."""

    classes: list[str]
    loss_sum: float = 0.0
    probs: list[np.ndarray] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        labels = labels.float()
        self.loss_sum += F.binary_cross_entropy_with_logits(
            logits, labels, reduction="sum").item() / logits.shape[1]
        self.probs.append(torch.sigmoid(logits).cpu().numpy())
        self.targets.append(labels.cpu().numpy())

    def as_tensor(self) -> torch.Tensor:
        """Single-process only (see :func:`check_multilabel_config`)."""
        return torch.tensor([self.loss_sum], dtype=torch.float64)

    def load_tensor(self, packed: torch.Tensor) -> None:
        self.loss_sum = float(packed[0])

    def compute(self, prefix: str = "val_") -> dict[str, float]:
        """Loss, mAP, and at the F1-best thresholds: exact match (``acc``), micro/macro F1."""
        width = len(self.classes)
        probs = np.concatenate(self.probs) if self.probs else np.zeros((0, width))
        targets = np.concatenate(self.targets) if self.targets else np.zeros((0, width))
        self.thresholds = choose_thresholds(probs, targets)
        found = summary(probs, targets, self.thresholds, self.classes)
        return {f"{prefix}loss": self.loss_sum / max(len(probs), 1),
                f"{prefix}acc": found["exact_match"], f"{prefix}map": found["map"],
                f"{prefix}macro_f1": found["macro_f1"], f"{prefix}micro_f1": found["micro_f1"]}


def validation_accumulator(num_classes: int, top_k: int, multilabel: list[str] | None
                           ) -> MetricAccumulator | MultiLabelAccumulator:
    """What one validation pass fills: a multi-label run's (``multilabel``: its class
    names) or top-1/top-k and confusion counts."""
    return (MultiLabelAccumulator(multilabel) if multilabel
            else MetricAccumulator(num_classes, top_k))


def accumulate(metrics: MetricAccumulator | MultiLabelAccumulator, logits: torch.Tensor,
               labels: torch.Tensor) -> None:
    """Add one batch: BCE for a multi-label run, else plain cross-entropy."""
    if isinstance(metrics, MultiLabelAccumulator):
        metrics.update(logits, labels)
    else:
        metrics.update(logits, labels, F.cross_entropy(logits, labels, reduction="sum").item())
