"""Layer names a user understands: "conv 1 (32 filters)", "after ReLU 2", "pool 2".

A model built as one numbered ``nn.Sequential`` (basic-cnn, deep-cnn, vgg-bn, resnet-s)
has module names ``0``, ``1``, ``2``: they say nothing to a reader. Its layers are
counted by kind instead, as the tutorial counts them, and ``--layer`` takes ``conv2``,
``relu2`` or ``pool2``. A model with named modules (torchvision's ``layer4``, timm's
``stages.3``) keeps its dotted names, with what each one is beside it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from torch import nn

CONV, ACTIVATION, POOL = "conv", "activation", "pool"
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.SiLU,
               nn.Mish, nn.Hardswish, nn.GELU)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d)
NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)
ORDINALS = {2: "2nd", 3: "3rd"}


@dataclass(frozen=True)
class LayerName:
    """One module's names: ``module`` in ``named_modules()``, ``option`` what ``--layer``
    takes, ``short`` for lists ("conv 1", "layer4"), ``what`` it is ("conv 1 (32
    filters)", "after ReLU 2", "a stage of 2 BasicBlocks")."""

    module: str
    option: str
    short: str
    what: str

    @property
    def label(self) -> str:
        """What a caption says: ``what`` alone when it names the layer, else with the name."""
        if self.option != self.module or self.what == self.module:
            return self.what
        return f"{self.module} ({self.what})"

    def call(self, count: int) -> LayerName:
        """The same layer's ``count``-th call in one forward pass (``name#2``)."""
        nth = ORDINALS.get(count, f"{count}th")
        return LayerName(f"{self.module}#{count}", f"{self.option}#{count}",
                         f"{self.short} ({nth} call)", f"{self.what}, {nth} call")


def kind_of(module: nn.Module) -> str | None:
    """conv, activation or pool: the layers whose maps ``--feature-maps`` draws."""
    if isinstance(module, nn.Conv2d):
        return CONV
    if isinstance(module, ACTIVATIONS):
        return ACTIVATION
    if isinstance(module, POOLS):
        return POOL
    return None


def _counted(module: nn.Module, top_level: bool) -> tuple[str, str]:
    """(key the ordinal counts, word before it) of a module in a numbered model."""
    kind = kind_of(module)
    if kind == ACTIVATION:
        return type(module).__name__.lower(), type(module).__name__
    if kind is not None:
        return kind, kind
    if isinstance(module, nn.BatchNorm2d):
        return "bn", "batch norm"
    if isinstance(module, NORMS):
        return "norm", "norm"
    if isinstance(module, nn.Linear):
        return "dense", "dense"
    if top_level and any(True for _ in module.children()):
        return "block", "block"
    return type(module).__name__.lower(), type(module).__name__


def _numbered_what(module: nn.Module, word: str, number: int) -> str:
    if isinstance(module, nn.Conv2d):
        return f"conv {number} ({module.out_channels} filters)"
    if kind_of(module) == ACTIVATION:
        return f"after {word} {number}"
    if word == "block":
        return f"block {number} ({type(module).__name__})"
    return f"{word} {number}"


def _numbered(model: nn.Module) -> dict[str, LayerName]:
    counts: Counter[str] = Counter()
    names: dict[str, LayerName] = {}
    for name, module in model.named_modules():
        if not name:
            continue
        top, _, rest = name.partition(".")
        if rest and any(True for _ in module.children()):  # e.g. resnet-s's 3.body
            parent = names[top]
            names[name] = LayerName(name, f"{parent.option}.{rest}", f"{parent.short} {rest}",
                                    f"{parent.short} {rest} ({type(module).__name__})")
            continue
        key, word = _counted(module, top_level=not rest)
        counts[key] += 1
        what = _numbered_what(module, word, counts[key])
        if rest:
            what += f" in {names[top].short}"
        names[name] = LayerName(name, f"{key}{counts[key]}", f"{word} {counts[key]}", what)
    return names


def _what(module: nn.Module) -> str:
    """What a named module of a torchvision or timm model is, in a few words."""
    kind, cls = kind_of(module), type(module).__name__
    children = list(module.children())
    if kind == CONV:
        return f"conv, {module.out_channels} filters"
    if isinstance(module, nn.Sequential) and children:
        classes = {type(c).__name__ for c in children}
        if len(classes) == 1 and len(children) > 1:
            return f"a stage of {len(children)} {classes.pop()}s"
        return f"a sequence of {len(children)} layers"
    if children:
        return f"{cls} block"
    return cls


def is_numbered(model: nn.Module) -> bool:
    """Whether the model's own modules are only numbers (one ``nn.Sequential``)."""
    names = [name for name, _ in model.named_children()]
    return bool(names) and all(name.isdigit() for name in names)


def layer_names(model: nn.Module) -> dict[str, LayerName]:
    """Every named module of ``model`` -> its names, in ``named_modules()`` order."""
    if is_numbered(model):
        return _numbered(model)
    return {name: LayerName(name, name, name, _what(module))
            for name, module in model.named_modules() if name}


def named(names: dict[str, LayerName], module: str) -> LayerName:
    """The names of a module, or of its ``#n``-th call; a name not found stays as it is."""
    base, _, count = module.partition("#")
    if base not in names:
        return LayerName(module, module, module, module)
    return names[base].call(int(count)) if count else names[base]


def _key(text: str) -> str:
    """A layer name as typed: case, spaces, "after" and "(32 filters)" do not matter."""
    text = re.sub(r"\(.*\)", "", text.lower()).strip()
    text = text.removeprefix("after ")
    return re.sub(r"[\s_-]+", "", text)


def resolve(wanted: str, names: dict[str, LayerName], among: list[str]) -> str | None:
    """The module ``wanted`` names among modules ``among``: a module name, an option
    (``relu2``) or a label (``after ReLU 2``); None when it names none of them."""
    if wanted in among:
        return wanted
    key = _key(wanted)
    for module in among:
        layer = named(names, module)
        # A dotted name's "what" (ReLU) is no name: many layers share it.
        typed = ((layer.option, layer.short, layer.what) if layer.option != layer.module
                 else (layer.option,))
        if key and key in {_key(t) for t in typed}:
            return module
    return None
