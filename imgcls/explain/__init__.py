"""Explain a checkpoint: class-activation maps, feature maps, first-layer filters."""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import Explainer, Explanation, checkpoint_path, explain
from .cam import METHODS
from .feature_maps import FeatureMap, feature_maps, first_conv_filters
from .layers import map_layers

__all__ = ["METHODS", "Explainer", "Explanation", "FeatureMap", "checkpoint_path", "explain",
           "feature_maps", "first_conv_filters", "map_layers"]


class _CallableModule(types.ModuleType):
    """``imgcls.explain(...)`` is the function, but importing this package makes
    ``imgcls.explain`` the package (Python sets the attribute): calling it calls
    :func:`explain`, so both spellings work whichever was imported first."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
