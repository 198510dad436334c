"""Explain a checkpoint: class-activation maps, feature maps, first-layer filters.

``imgcls.explain`` itself is the function (:func:`imgcls.explain.api.explain`, bound by
the package root); the names below come from ``from imgcls.explain import ...``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["METHODS", "Explainer", "Explanation", "FeatureMap", "checkpoint_path", "explain",
           "feature_maps", "first_conv_filters", "map_layers"]

if TYPE_CHECKING:
    from .api import Explainer, Explanation, checkpoint_path, explain
    from .cam import METHODS
    from .feature_maps import FeatureMap, feature_maps, first_conv_filters
    from .layers import map_layers

# Lazy: the package root imports this package (see imgcls/__init__.py) without torch.
__getattr__ = lazy_exports(__name__, {
    "Explainer": ".api", "Explanation": ".api", "checkpoint_path": ".api", "explain": ".api",
    "METHODS": ".cam", "FeatureMap": ".feature_maps", "feature_maps": ".feature_maps",
    "first_conv_filters": ".feature_maps", "map_layers": ".layers",
})
