"""timm's model zoo as imgcls models: ``timm/<name>`` and ``timm/<name>.<tag>``.

Each model carries the preprocessing of its pretrained config and its weights as
:class:`imgcls.specs.WeightsSpec`; ``--weights imagenet`` (or a tag) loads them through
timm's own loader, which reads the Hugging Face cache and honours ``HF_HUB_OFFLINE``
and ``HF_ENDPOINT``. Building a model never loads weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgcls import hookimpl
from imgcls.specs import ModelSpec

from .loading import make_load
from .zoo import NAMESPACE, iter_specs, preprocess_from_cfg

__all__ = ["NAMESPACE", "make_build", "make_load", "preprocess_from_cfg", "register_models"]


def make_build(timm_name: str, cfg: Any) -> Callable[..., Any]:
    """A builder for ``timm.create_model(timm_name)`` with a head for ``num_classes``."""
    fixed = bool(cfg.fixed_input_size)

    def build(num_classes: int, image_size: tuple[int, int] = tuple(cfg.input_size[1:]),
              drop_rate: float = 0.0, drop_path_rate: float | None = None) -> Any:
        import timm

        options: dict[str, Any] = {"drop_rate": float(drop_rate)}
        if drop_path_rate is not None:
            options["drop_path_rate"] = float(drop_path_rate)
        if fixed:  # ViT-like models size their position embeddings for one input size
            options["img_size"] = tuple(int(v) for v in image_size)
        try:
            model = timm.create_model(timm_name, pretrained=False, num_classes=num_classes,
                                      **options)
        except TypeError as exc:  # an option this architecture does not take
            raise ValueError(f"timm {timm_name}: {exc}") from exc
        # What the weights' loader needs to build the same model with pretrained weights.
        model.imgcls_timm_options = options
        return model

    build.__doc__ = f"timm {timm_name} with a new head for num_classes (random init)."
    return build


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for spec in iter_specs(make_build, make_load):
        register(spec)
