"""Train a frozen backbone's head on features computed once per image.

While only the head learns and nothing changes the images, the head's input is a fixed
function of each image: the backbone runs as in evaluation (BatchNorm keeps its
statistics, dropout is off), so computing that input once and training the head on the
stored vectors gives the same gradients at a fraction of the cost. Nearly all of a frozen
epoch is the backbone's forward pass; with the cache every epoch after the first costs
about as much as a logistic regression.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.augment import Pipeline
from ..data.cache import DecodedImages
from ..metrics import MetricAccumulator
from .config import TrainConfig
from .finetune import frozen_at
from .multilabel import MultiLabelAccumulator, accumulate, validation_accumulator
from .optim import head_name
from .precision import Precision
from .timing import StageClock

Batch = tuple[torch.Tensor, torch.Tensor]
EXTRACT_BATCH = 64


@dataclass
class FeatureCache:
    """The head's input for every training and validation image, on the device."""

    head: str  # the head's dotted name in the model
    train: Batch  # (features N x D, labels N)
    val: Batch
    usable: bool = True  # False: the model's output is not its head's (see build_cache)

    def module(self, model: nn.Module) -> nn.Module:
        return model.get_submodule(self.head)

    def batches(self, loader: Any, clock: StageClock) -> Iterator[Batch]:
        """The training features in the loader's order (its sampler, batch size)."""
        features, labels = self.train
        order = torch.as_tensor(list(loader.sampler), dtype=torch.long)
        size = loader.batch_size
        for start in range(0, len(order), size):
            if loader.drop_last and start + size > len(order):
                return
            with clock("data"):
                index = order[start:start + size].to(features.device)
                batch = features[index], labels[index]
            yield batch

    @torch.no_grad()
    def validate(self, model: nn.Module, precision: Precision, num_classes: int,
                 top_k: int, multilabel: list[str] | None = None
                 ) -> MetricAccumulator | MultiLabelAccumulator:
        """:func:`imgcls.train.loop.validate` on the cached validation features."""
        head = self.module(model)
        head.eval()
        metrics = validation_accumulator(num_classes, top_k, multilabel)
        features, labels = self.val
        for start in range(0, len(labels), 1024):
            with precision.autocast():
                logits = head(features[start:start + 1024]).float()
            accumulate(metrics, logits, labels[start:start + 1024])
        return metrics


def cacheable(config: TrainConfig, augment: Pipeline, distributed: bool, epoch: int) -> bool:
    """Whether ``epoch`` may train on cached features (``--cache-features``, the default).

    Only while the backbone is frozen, nothing is augmented (an augmented image has other
    features every epoch) and one process trains (DDP syncs gradients in the full model).
    """
    return (config.cache_features and frozen_at(config, epoch) and not distributed
            and not augment.sample and not augment.batch)


def epoch_features(s: Any, epoch: int) -> FeatureCache | None:
    """The cache for ``epoch`` of a fit() session ``s`` (kept in ``s.features``): built on
    first use, dropped once the backbone thaws; None when the epoch trains on images."""
    if not cacheable(s.config, s.augment, s.env.enabled, epoch):
        s.features = None
        return None
    if s.features is None:
        s.features = session_cache(s)
    return s.features if s.features.usable else None


def session_cache(s: Any) -> FeatureCache:
    train, val = s.train_loader.dataset.images, s.val_loader.dataset.images
    task = s.reporter.task("computing features", len(train) + len(val))
    cache = build_cache(s.model, s.outputs.spec.head, train, val, s.normalize, s.precision,
                        task)
    if not cache.usable:
        s.reporter.warn("the model computes more after its head, so the frozen backbone's "
                        "features cannot be cached; training on images.")
    else:
        s.reporter.note(f"the backbone is frozen and nothing is augmented: its features "
                        f"({cache.train[0].shape[1]} per image) are computed once and the "
                        "head trains on them.")
    return cache


def build_cache(model: nn.Module, head: str | None, train: DecodedImages, val: DecodedImages,
                normalize: Callable[[torch.Tensor], torch.Tensor], precision: Precision,
                progress: Callable[[int], None]) -> FeatureCache:
    """Run the backbone once over both splits. Unusable when the model's output is not
    its head applied to what the head receives once (something runs after the head)."""
    name = head_name(model, head)
    done = [0]

    def advance(count: int) -> None:
        done[0] += count
        progress(done[0])

    was_training = model.training
    model.eval()
    try:
        train_part = extract(model, name, train, normalize, precision, advance)
        val_part = (extract(model, name, val, normalize, precision, advance)
                    if train_part is not None else None)
    finally:
        model.train(was_training)
    if train_part is None or val_part is None:
        empty = torch.zeros(0), torch.zeros(0, dtype=torch.long)
        return FeatureCache(name, empty, empty, usable=False)
    return FeatureCache(name, train_part, val_part)


@torch.no_grad()
def extract(model: nn.Module, head: str, images: DecodedImages,
            normalize: Callable[[torch.Tensor], torch.Tensor], precision: Precision,
            advance: Callable[[int], None]) -> Batch | None:
    """The head's input for each image, in order, and the labels (None: see build_cache)."""
    module = model.get_submodule(head)
    captured: list[torch.Tensor] = []
    hook = module.register_forward_pre_hook(lambda _, args: captured.append(args[0].float()))
    try:
        for start in range(0, len(images), EXTRACT_BATCH):
            pixels, _ = images.take(range(start, min(start + EXTRACT_BATCH, len(images))))
            batch = torch.from_numpy(pixels).permute(0, 3, 1, 2)
            with precision.autocast():
                logits = model(normalize(batch)).float()
            if start == 0 and not _head_is_last(module, captured, logits, precision):
                return None
            advance(len(pixels))
    finally:
        hook.remove()
    device = captured[0].device if captured else torch.device("cpu")
    features = torch.cat(captured) if captured else torch.zeros(0, 0, device=device)
    labels = torch.as_tensor(images.labels, device=device)
    # Class indices, or a multi-label run's 0/1 vectors (N x classes), which stay floats.
    return features, labels.long() if labels.dim() == 1 else labels.float()


def _head_is_last(head: nn.Module, captured: list[torch.Tensor], logits: torch.Tensor,
                  precision: Precision) -> bool:
    if len(captured) != 1:  # the head ran more than once per forward pass
        return False
    with precision.autocast():
        again = head.forward(captured[0]).float()  # forward(): not through the hook
    scale = logits.abs().max().clamp(min=1.0)
    return again.shape == logits.shape and bool(((again - logits).abs() <= 1e-2 * scale).all())
