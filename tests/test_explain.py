"""imgcls explain: CAMs that point where the evidence is, feature maps, filters, errors."""

from __future__ import annotations

import contextlib
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import imgcls
from imgcls import hookimpl, plugins
from imgcls.checkpoint import build_model, load_checkpoint, save_checkpoint
from imgcls.cli import main
from imgcls.data.shapes import ShapesOptions, drawn
from imgcls.errors import CheckpointError, ConfigError
from imgcls.explain import Explainer, first_conv_filters
from imgcls.explain.cam import METHODS, grad_cams, library_cams
from imgcls.explain.layers import default_cam_layer
from imgcls.manifest import make_manifest
from imgcls.registry import get_model
from imgcls.specs import ModelSpec, Preprocess

SHAPE_CLASSES = ["circle", "square", "triangle"]


def checkpoint(folder: Path, model: str, size: int = 64, classes: list[str] | None = None,
               **options) -> Path:
    """An untrained checkpoint of ``model`` (seeded): enough for names, shapes and errors."""
    spec = get_model(model).spec
    preprocess = spec.preprocess.with_size(size)
    manifest = make_manifest(model, options, classes or SHAPE_CLASSES, preprocess)
    torch.manual_seed(0)
    path = folder / f"{model}.safetensors"
    save_checkpoint(path, build_model(manifest), manifest)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A basic-cnn checkpoint, three shape images and a file that is not an image."""
    root = tmp_path_factory.mktemp("explain")
    paths = {"basic-cnn": checkpoint(root, "basic-cnn")}
    options = ShapesOptions(classes=3, val_per_class=1, size=64)
    for name, image, _ in drawn(options, "val"):
        paths[Path(name).parent.name] = root / Path(name).name
        image.save(paths[Path(name).parent.name])
    paths["broken"] = root / "broken.jpg"
    paths["broken"].write_bytes(b"not a jpeg")
    return paths


# --------------------------------------------------------------------------- pointing game


def cam_ratio(cam: np.ndarray, mask: np.ndarray) -> float:
    """CAM mass per pixel inside the shape over that outside (0 for an all-zero map)."""
    outside = float(cam[~mask].mean())
    return float(cam[mask].mean()) / outside if outside > 0 else float(cam[mask].mean() > 0) * 1e9


def pointing(cams: np.ndarray, masks: list[np.ndarray], factor: float = 2.0) -> float:
    """The fraction of images whose CAM is at least ``factor`` x denser inside the shape."""
    return float(np.mean([cam_ratio(c, m) >= factor for c, m in zip(cams, masks, strict=True)]))


def test_the_shapes_generator_knows_each_shape_s_mask():
    from imgcls.data.shapes import FORMAT_VERSION, SHAPES, draw_shape

    options = ShapesOptions(classes=len(SHAPES), val_per_class=3, size=48, seed=4)
    items = list(drawn(options, "val"))
    assert [name for name, _, _ in items[:2]] == ["val/circle/circle_00000.png",
                                                  "val/circle/circle_00001.png"]
    for index, kind in enumerate(SHAPES):  # the very images generate() writes
        rng = np.random.default_rng([4, 1, index, FORMAT_VERSION])
        for _, image, mask in items[3 * index:3 * index + 3]:
            assert np.array_equal(np.asarray(image), np.asarray(draw_shape(kind, 48, rng)))
            bright = np.asarray(image).max(axis=2) >= 150  # shapes reach 170, backgrounds 110
            assert 0.02 < mask.mean() < 0.6 and bright[mask].mean() > 0.9
            assert bright[~mask].mean() < 0.05


class Evidence(nn.Module):
    """A network whose evidence is known: class 1 sums the pixels where a colour channel is
    bright (the shapes are, see imgcls.data.shapes), or with ``background=True`` the pixels
    where none is; class 0 is the negative of that sum."""

    def __init__(self, num_classes: int = 2, image_size: tuple[int, int] = (48, 48),
                 background: bool = False) -> None:
        super().__init__()
        self.bright = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(inplace=True))
        self.evidence = nn.Sequential(nn.Conv2d(3, 1, 1), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2))
        with torch.no_grad():
            self.bright[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bright[0].bias.fill_(-0.55)  # shape colours reach 170/255, backgrounds 110
            self.evidence[0].weight.fill_(-4.0 if background else 1.0)
            self.evidence[0].bias.fill_(0.05 if background else 0.0)
            self.head[2].weight.copy_(torch.tensor([[-1.0], [1.0]]))
            self.head[2].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.evidence(self.bright(x)))


@contextlib.contextmanager
def evidence_plugin():
    module = types.ModuleType("evidence-plugin")

    @hookimpl
    def register_models(register):
        register(ModelSpec("evidence-test", Evidence, Preprocess(size=(48, 48)),
                           cam_layer="evidence"))

    module.register_models = register_models
    plugins.load_plugins()
    plugins.pm.register(module, name="evidence-plugin")
    try:
        yield
    finally:
        plugins.pm.unregister(module)


@pytest.fixture(scope="module")
def shapes_val(tmp_path_factory) -> tuple[list[Path], list[np.ndarray]]:
    """30 validation shapes written as PNGs, and the generator's mask of each."""
    root = tmp_path_factory.mktemp("shapes-val")
    paths, masks = [], []
    for name, image, mask in drawn(ShapesOptions(classes=3, val_per_class=10, size=48), "val"):
        paths.append(root / name.replace("/", "-"))
        image.save(paths[-1])
        masks.append(mask)
    return paths, masks


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam"])
def test_cams_point_at_the_shape_exactly_when_the_evidence_is_there(method, shapes_val,
                                                                    tmp_path):
    """The pointing game on shapes, with models whose evidence is known by construction.

    Through imgcls.explain (decode, Preprocess, CAM, resize): the map of the class whose
    evidence is the shape is 2x denser inside it on 90% of the images; a model whose
    evidence is the background, and the other class's map, fail the same check.
    """
    paths, masks = shapes_val
    with evidence_plugin():
        ckpts = {}
        for background in (False, True):
            manifest = make_manifest("evidence-test", {"background": background}, ["a", "b"],
                                     Preprocess(size=(48, 48)))
            ckpts[background] = save_checkpoint(tmp_path / f"{background}.safetensors",
                                                Evidence(background=background), manifest)
        shape = imgcls.explain(ckpts[False], paths, method=method, target="a", device="cpu")
        back = imgcls.explain(ckpts[True], paths, method=method, device="cpu")
    assert all(e.predicted == "b" and e.layer == "evidence" for e in shape + back)
    assert pointing(np.stack([e.cams["b"] for e in shape]), masks) >= 0.9
    assert pointing(np.stack([e.cams["b"] for e in back]), masks) <= 0.1
    assert pointing(np.stack([e.cams["a"] for e in shape]), masks) <= 0.1


@pytest.mark.slow
def test_a_trained_basic_cnn_points_at_the_shape_and_a_random_one_does_not(tmp_path,
                                                                           _isolated_cache):
    """The pointing game with a basic-cnn trained here, on circles, squares and triangles.

    HiResCAM on the first conv layer: on 90% of the correctly classified validation
    images the map puts 2x more mass per pixel inside the shape's mask than outside it,
    and a random-weight basic-cnn fails. The shapes are drawn at 75% of the default
    radius and trained with cutmix on half the batches. The evidence of an edge
    detector is the outline, which straddles the mask: at full size the interior
    is so large that its density dilutes that evidence (inside the bare mask 33-42%,
    trained or random). Measured with torch's two threads, seeds 0/1/2: trained
    0.99/0.93/0.93, random 0.37/0.34/0.23; with one thread (as the suite runs, see the root
    conftest.py) seed 0 1.00 against 0.37, seeds 1/2 0.83/0.89: the test's seed 0 passes
    with a wide margin, other seeds are closer to the line.
    """
    from imgcls.train import TrainConfig, fit

    options = ShapesOptions(classes=3, train_per_class=1000, val_per_class=30, size=64,
                            scale=75)
    config = TrainConfig(model="basic-cnn", data="shapes", data_options=vars(options),
                         epochs=15, batch_size=32, lr=2e-3, augment="cutmix:p=0.5",
                         report=False, out=str(tmp_path), name="pointing")
    best = fit(config).best_path
    root = tmp_path / "val"
    paths, masks, labels = [], [], []
    for name, image, mask in drawn(options, "val"):
        paths.append(root / name)
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        image.save(paths[-1])
        masks.append(mask)
        labels.append(Path(name).parent.name)
    torch.manual_seed(1)
    manifest = load_checkpoint(best).manifest
    random = save_checkpoint(tmp_path / "random.safetensors", build_model(manifest), manifest)
    scores = {}
    for kind, path in (("trained", best), ("random", random)):
        found = imgcls.explain(path, paths, method="hirescam", layer="1", device="cpu")
        right = [i for i, e in enumerate(found) if e.predicted == labels[i] or kind == "random"]
        assert len(right) >= 0.8 * len(found)
        scores[kind] = pointing(np.stack([found[i].cams[found[i].predicted] for i in right]),
                                [masks[i] for i in right])
    assert scores["trained"] >= 0.9 > scores["random"], scores


def test_trained_cams_depend_on_the_weights(trained):
    """The model-randomisation sanity check (Adebayo et al. 2018) on a trained basic-cnn:
    its Grad-CAMs on the shapes validation images differ from those of the same network
    with random weights. (The pointing game itself does not tell them apart on shapes:
    there, an untrained network's activations follow the bright shape; see docs/explain.md.)
    """
    from imgcls.data.shapes import default_root
    from imgcls.system import cache_dir

    from .helpers import TINY_SHAPES

    options = ShapesOptions(**TINY_SHAPES)
    root = default_root(cache_dir(), options)
    explainer = Explainer(trained.best_path, device="cpu")
    inputs = explainer.inputs(np.stack([explainer.pixels(root / name)
                                        for name, _, _ in drawn(options, "val")]))
    torch.manual_seed(1)
    maps = []
    for model in (explainer.model, build_model(load_checkpoint(trained.best_path).manifest)):
        model.eval()
        with torch.no_grad():
            predicted = model(inputs).argmax(1)
        maps.append(grad_cams(model, inputs, model.get_submodule(explainer.layer), predicted))
    both = [(a.ravel(), b.ravel()) for a, b in zip(*maps, strict=True) if a.std() and b.std()]
    assert len(both) > len(inputs) // 2
    assert np.median([abs(np.corrcoef(a, b)[0, 1]) for a, b in both]) < 0.5


def test_the_fast_grad_cam_of_report_html_is_pytorch_grad_cam_s():
    torch.manual_seed(0)
    for name in ("basic-cnn", "resnet-s"):
        spec = get_model(name).spec
        model = spec.build(3, image_size=(64, 64)).eval()
        inputs, targets = torch.rand(3, 3, 64, 64), torch.tensor([0, 2, 1])
        layer = model.get_submodule(default_cam_layer(model, spec))
        ours = grad_cams(model, inputs, layer, targets)
        theirs, _ = library_cams(model, inputs, layer, "gradcam", targets.tolist())
        assert ours.shape == (3, 64, 64) and np.abs(ours - theirs).max() < 1e-4


# --------------------------------------------------------------------------- the API


def test_explain_returns_model_sized_arrays_for_every_method(files):
    image = Image.open(files["square"])
    for method in METHODS:
        results = imgcls.explain(files["basic-cnn"], [files["circle"], image], method=method,
                                 target="triangle", device="cpu")
        assert [r.source for r in results] == [str(files["circle"]), ""]
        for result in results:
            assert result.pixels.shape == (64, 64, 3) and result.pixels.dtype == np.uint8
            assert result.probs.shape == (3,) and abs(result.probs.sum() - 1) < 1e-5
            assert set(result.cams) == {result.predicted, "triangle"}
            assert result.method == method and result.layer == "4"
            for cam in result.cams.values():
                assert cam.shape == (64, 64) and cam.dtype == np.float32
                assert cam.min() >= 0 and cam.max() <= 1
    # The explained pixels are the shared decoder's, at the model's input size.
    from imgcls.images import load_pixels

    assert np.array_equal(results[0].pixels, load_pixels(files["circle"],
                                                         Preprocess(size=(64, 64))))


def test_imgcls_explain_is_the_function_and_the_package_stays_a_plain_package(files):
    import sys

    from imgcls import explain
    from imgcls.explain import api

    assert explain is imgcls.explain and type(sys.modules["imgcls.explain"]) is types.ModuleType
    assert api.explain is sys.modules["imgcls.explain"].explain is not explain
    result = imgcls.explain(files["basic-cnn"], files["circle"], device="cpu")[0]
    assert result.layer == "4" and result.layer_name.label == "after ReLU 2"


@pytest.mark.parametrize("first", ["import imgcls.explain.cam", "from imgcls.explain import cam",
                                   "import imgcls"])
def test_imgcls_explain_is_the_function_whichever_was_imported_first(first):
    import subprocess
    import sys

    code = f"{first}\nimport imgcls, sys\nassert callable(imgcls.explain)\n" \
           "assert imgcls.explain.__module__ == 'imgcls'\nprint('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ("False" if first == "import imgcls" else "True")


def test_default_cam_layers_are_each_model_s_last_conv_block():
    expected = {("basic-cnn", ()): "4", ("deep-cnn", ()): "7", ("vgg-bn", ()): "26",
                ("vgg-bn", (("depth", 2),)): "12", ("resnet-s", ()): "11",
                ("resnet-s", (("depth", 8),)): "5"}
    for (name, options), layer in expected.items():
        spec = get_model(name).spec
        model = spec.build(3, image_size=spec.input_size, **dict(options))
        assert default_cam_layer(model, spec) == layer, (name, options)
    # A plugin that names no layer gets its model's last Conv2d.
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten())
    assert default_cam_layer(net, ModelSpec("x", lambda **_: net, Preprocess())) == "2"


def test_a_wrong_layer_lists_the_valid_names(files, capsys):
    with pytest.raises(ConfigError) as info:
        Explainer(files["basic-cnn"], layer="conv 3", device="cpu").layer  # noqa: B018
    assert "has no layer 'conv 3' with a feature map" in info.value.message
    assert info.value.hint.startswith("Did you mean 'conv2' or 'conv1'?")
    assert "Valid --layer names (last first): conv2, conv1, pool2, relu2," in info.value.hint
    # Layers are named as the captions name them, or by module name (index) as before.
    for name, module in (("2", "2"), ("relu1", "1"), ("after ReLU 1", "1"),
                         ("conv 2 (32 filters)", "3"), ("Pool2", "5")):
        assert Explainer(files["basic-cnn"], layer=name, device="cpu").layer == module, name
    code = main(["explain", str(files["basic-cnn"]), str(files["circle"]), "--layer", "fc"])
    err = capsys.readouterr().err
    assert code == 1 and "Error: Model 'basic-cnn' has no layer 'fc'" in err
    assert ("Hint: Valid --layer names (last first): pool2, relu2, conv2, pool1, relu1, conv1."
            in err)
    code = main(["explain", str(files["basic-cnn"]), str(files["circle"]), "--target", "dog"])
    err = capsys.readouterr().err
    assert code == 1 and "Error: Unknown target class 'dog'." in err
    assert "Hint: The model's classes are: circle, square, triangle." in err


def test_an_onnx_file_is_refused_with_a_pointer_to_the_checkpoint(tmp_path, capsys):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"an exported model")
    with pytest.raises(CheckpointError, match="is an ONNX model: it has no gradients"):
        imgcls.explain(onnx, tmp_path / "a.jpg")
    assert main(["explain", str(onnx), "a.jpg"]) == 1
    err = capsys.readouterr().err
    assert "model.onnx is an ONNX model: it has no gradients" in err
    assert "Hint: Pass the checkpoint it was exported from" in err


# --------------------------------------------------------------------------- feature maps


def _maps(model: str, size: int, tmp_path: Path, **options) -> list:
    explainer = Explainer(checkpoint(tmp_path, model, size, **options), device="cpu")
    image = np.full((size, size, 3), 128, dtype=np.uint8)
    return explainer.feature_maps(image), explainer.filters()


def test_basic_cnn_feature_maps_and_filters_are_the_tutorial_s(tmp_path):
    maps, (name, tiles) = _maps("basic-cnn", 64, tmp_path)
    assert [(m.name, m.kind, m.module, m.shape) for m in maps] == [
        ("0", "conv", "Conv2d", (32, 62, 62)), ("1", "activation", "ReLU", (32, 62, 62)),
        ("2", "pool", "MaxPool2d", (32, 31, 31)), ("3", "conv", "Conv2d", (32, 29, 29)),
        ("4", "activation", "ReLU", (32, 29, 29)), ("5", "pool", "MaxPool2d", (32, 14, 14))]
    assert [m.label for m in maps] == ["conv 1 (32 filters)", "after ReLU 1", "pool 1",
                                       "conv 2 (32 filters)", "after ReLU 2", "pool 2"]
    assert all(m.maps.shape == (16, *m.shape[1:]) for m in maps)
    # The ReLU after a conv is drawn, not the conv's map overwritten in place by it.
    assert maps[0].maps.min() < 0 <= maps[1].maps.min()
    assert name == "0" and tiles.shape == (32, 3, 3, 3)
    assert tiles.min() == 0 and tiles.max() == 1


def test_resnet_s_feature_maps_name_every_block(tmp_path):
    maps, (name, tiles) = _maps("resnet-s", 64, tmp_path)
    names = [m.name for m in maps]
    assert names[:7] == ["0", "2", "3.body.0", "3.body.2", "3.body.3", "3.relu", "4.body.0"]
    assert "6.shortcut.0" in names and "9.shortcut.0" in names  # the projections
    assert len(maps) == 40 and maps[-1].name == "11.relu" and maps[-1].shape == (64, 8, 8)
    assert maps[2].label == "conv 2 (16 filters) in block 1"
    assert maps[-1].label == "after ReLU 19 in block 9" and maps[-1].layer.option == "relu19"
    assert name == "0" and tiles.shape == (16, 3, 3, 3)


def test_torchvision_feature_maps_count_each_call_of_a_module(tmp_path):
    pytest.importorskip("imgcls_torchvision", reason="the torchvision plugin is not installed")
    maps, (name, tiles) = _maps("resnet18", 64, tmp_path)
    names = [m.name for m in maps]
    assert names[:7] == ["conv1", "relu", "maxpool", "layer1.0.conv1", "layer1.0.relu",
                         "layer1.0.conv2", "layer1.0.relu#2"]
    assert "layer2.0.downsample.0" in names and "avgpool" not in names  # 1 x 1 maps are not
    assert maps[-1].name == "layer4.1.relu#2" and maps[-1].shape == (512, 2, 2)
    # Dotted names stay, with what each layer is.
    assert maps[0].label == "conv1 (conv, 64 filters)"
    assert maps[-1].label == "layer4.1.relu#2 (ReLU, 2nd call)"
    assert all(len(m.maps) == 16 for m in maps)
    assert name == "conv1" and tiles.shape == (64, 7, 7, 3)


def test_feature_maps_leave_out_channels_last_activations(tmp_path):
    pytest.importorskip("imgcls_torchvision", reason="the torchvision plugin is not installed")
    maps, _ = _maps("convnext-tiny", 64, tmp_path)
    # ConvNeXt's GELU acts on N x H x W x C tensors: not channels, so not drawn.
    assert {m.kind for m in maps} == {"conv"} and maps[0].name == "features.0.0"
    with pytest.raises(ConfigError, match="no conv layer on its RGB input"):
        first_conv_filters(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))


# --------------------------------------------------------------------------- the command


def test_explain_writes_a_png_per_image_and_a_page_and_reports_unreadable_ones(files, tmp_path,
                                                                               capsys):
    out = tmp_path / "explain"
    code = main(["explain", str(files["basic-cnn"]), str(files["circle"]), str(files["broken"]),
                 str(files["square"]), "--out-dir", str(out), "--target", "triangle",
                 "--method", "gradcam++", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"unreadable: {files['broken']}: Cannot decode" in captured.err
    assert "2 images explained (gradcam++, layer relu2: after ReLU 2), 1 unreadable" in (
        captured.out)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted([files["circle"].name, files["square"].name])
    page = (out / "explain.html").read_text()
    assert all(f'src="{name}"' in page for name in pngs) and "broken.jpg" in page
    assert "Class-activation maps: gradcam++, after ReLU 2" in page
    assert Image.open(out / pngs[0]).size[0] > 500  # input, two overlays, the votes


def test_explain_feature_maps_and_filters_write_one_grid_per_layer(files, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["explain", str(files["basic-cnn"]), str(files["circle"]), "--feature-maps",
                 "--filters", "--out-dir", str(out), "--device", "cpu"]) == 0
    assert ("feature maps of 6 layers (conv 1 to pool 2), the 32 filters of conv 1"
            in capsys.readouterr().out)
    assert sorted(p.name for p in (out / "feature-maps").iterdir()) == [
        "00-conv1.png", "01-relu1.png", "02-pool1.png", "03-conv2.png", "04-relu2.png",
        "05-pool2.png"]
    assert (out / "filters.png").is_file() and not list(out.glob("circle*.png"))
    page = (out / "explain.html").read_text()
    assert 'src="feature-maps/03-conv2.png"' in page
    assert "<b>conv 2 (32 filters)</b>: 32 x 29 x 29" in page
    assert "The 32 filters of conv 1 (3 x 3 x 3)" in page and "Filters of 0" not in page
    assert main(["explain", str(files["basic-cnn"]), "--filters", "--out-dir", str(out)]) == 0
    for args, message in (([str(files["circle"]), str(files["square"]), "--feature-maps"],
                           "--feature-maps draws one image, got 2"),
                          ([], "Missing IMAGE"), ([str(files["circle"]), "-o", "x"],
                                                  "-o/--output names a file")):
        assert main(["explain", str(files["basic-cnn"]), *args]) == 1
        assert message in capsys.readouterr().err


def test_the_cli_lists_every_method():
    from imgcls.cli.explain import METHOD_HELP

    assert all(method in METHOD_HELP for method in METHODS)
