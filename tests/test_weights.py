"""Pretrained weights: a verified, atomic, offline-aware fetch from a real HTTP server,
choosing and loading weights, and training that applies them once."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import pytest
import torch

from imgcls import hookimpl
from imgcls.errors import ConfigError
from imgcls.plugins import load_plugins, pm
from imgcls.registry import get_model
from imgcls.specs import ModelSpec, Preprocess, WeightsSpec
from imgcls.weights import DownloadError, apply_weights, expected_hash, fetch, resolve_weights

from .helpers import colour_data, file_server, tiny_config

NAME = "weights.pth"


def state_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, online, with no mirror."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("IMGCLS_OFFLINE", "HF_HUB_OFFLINE", "IMGCLS_WEIGHTS_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def server():
    with file_server() as running:
        yield running


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- fetch


def test_download_shows_progress_and_lands_in_the_torch_hub_cache(cache, server, capfd):
    data = b"weights" * 50_000
    server.files["/w/" + NAME] = data
    path = fetch(f"{server.url}/w/{NAME}", sha(data))
    assert path == cache / NAME and path.read_bytes() == data
    assert f"downloading {NAME}" in capfd.readouterr().err
    assert leftovers(cache) == [NAME]  # no temp file left beside it


def test_a_second_fetch_uses_the_cache_without_a_request(cache, server):
    server.files["/" + NAME] = b"abc"
    first = fetch(f"{server.url}/{NAME}", sha(b"abc"), progress=False)
    second = fetch(f"{server.url}/{NAME}", sha(b"abc"), progress=False)
    assert first == second and server.requests == ["/" + NAME]


def test_a_wrong_hash_is_refused_and_the_file_removed(cache, server):
    server.files["/" + NAME] = b"tampered"
    with pytest.raises(DownloadError, match="hash check") as info:
        fetch(f"{server.url}/{NAME}", sha(b"original"), progress=False)
    assert sha(b"tampered") in info.value.message
    assert leftovers(cache) == []


def test_torchvision_file_names_carry_the_hash_prefix_that_is_checked(cache, server):
    data = b"torchvision weights"
    good, bad = f"net-{sha(data)[:8]}.pth", "net-0badc0de.pth"
    server.files |= {"/" + good: data, "/" + bad: data}
    assert expected_hash(None, good) == sha(data)[:8]
    assert fetch(f"{server.url}/{good}", progress=False).read_bytes() == data
    with pytest.raises(DownloadError, match="0badc0de"):
        fetch(f"{server.url}/{bad}", progress=False)
    assert leftovers(cache) == [good]


def test_a_server_dying_mid_file_leaves_nothing_a_later_run_trusts(cache, server):
    data = bytes(range(256)) * 4000
    server.files["/" + NAME] = data
    server.truncate.add("/" + NAME)
    with pytest.raises(DownloadError, match="closed after"):
        fetch(f"{server.url}/{NAME}", progress=False)  # no hash: the length still catches it
    assert leftovers(cache) == []
    server.truncate.clear()
    assert fetch(f"{server.url}/{NAME}", sha(data), progress=False).read_bytes() == data


@pytest.mark.parametrize("variable", ["IMGCLS_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_a_missing_file_is_one_line_naming_the_url_and_the_path(cache, server,
                                                                          monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    url = f"{server.url}/{NAME}"
    with pytest.raises(ConfigError) as info:
        fetch(url)
    message = info.value.message
    assert "\n" not in message and url in message and str(cache / NAME) in message
    assert variable in message and server.requests == []
    # A file put there by hand is then used, still offline.
    cache.mkdir(parents=True)
    (cache / NAME).write_bytes(b"by hand")
    assert fetch(url).read_bytes() == b"by hand"


def test_a_mirror_serves_the_file_by_name(cache, server, monkeypatch):
    server.files["/mirror/" + NAME] = b"mirrored"
    unreachable = f"http://127.0.0.1:9/origin/{NAME}"
    monkeypatch.setenv("IMGCLS_WEIGHTS_MIRROR", f"{server.url}/mirror/")
    assert fetch(unreachable, sha(b"mirrored"), progress=False).read_bytes() == b"mirrored"
    assert server.requests == ["/mirror/" + NAME]
    monkeypatch.delenv("IMGCLS_WEIGHTS_MIRROR")
    (cache / NAME).unlink()
    path = fetch(unreachable, sha(b"mirrored"), progress=False, mirror=f"{server.url}/mirror")
    assert path.read_bytes() == b"mirrored" and len(server.requests) == 2


# --------------------------------------------------------------------------- choose and load


def basic_cnn(num_classes: int = 2) -> tuple[ModelSpec, torch.nn.Module]:
    spec = get_model("basic-cnn").spec
    return spec, spec.build(num_classes, image_size=spec.input_size)


def test_choices_name_the_default_a_tag_or_a_file():
    spec = served_spec("http://127.0.0.1:9/x.pth", None)
    first, second = spec.weights
    assert resolve_weights(spec, "imagenet") == (first, None)
    assert resolve_weights(spec, "DEFAULT") == (first, None)
    assert resolve_weights(spec, "second") == (second, None)
    assert resolve_weights(spec, "dir/w.pth") == (None, Path("dir/w.pth"))
    with pytest.raises(ConfigError, match="no weights 'V3'") as info:
        resolve_weights(spec, "V3")
    assert "first, second" in info.value.hint
    with pytest.raises(ConfigError, match="no pretrained weights"):
        resolve_weights(get_model("basic-cnn").spec, "imagenet")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_local_weights_file_loads_and_is_recorded(tmp_path, suffix):
    spec, source = basic_cnn(5)
    path = tmp_path / f"mine{suffix}"
    if suffix == ".pth":
        torch.save(source.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    _, model = basic_cnn(2)  # another head size: the head keeps its new shape
    record = apply_weights(spec, model, str(path))
    assert torch.equal(model[0].weight, source[0].weight)
    assert model[9].out_features == 2
    assert record == {"file": str(path.resolve()), "sha256": sha(path.read_bytes())}


def test_a_state_dict_for_another_architecture_is_one_clear_error(tmp_path):
    other = get_model("deep-cnn").spec
    path = tmp_path / "deep.pth"
    torch.save(other.build(2, image_size=other.input_size).state_dict(), path)
    spec, model = basic_cnn()
    with pytest.raises(ConfigError) as info:
        apply_weights(spec, model, str(path))
    assert str(path) in info.value.message and "basic-cnn" in info.value.message
    assert "missing" in info.value.message or "shape" in info.value.message
    with pytest.raises(ConfigError, match="not found"):
        apply_weights(spec, model, str(tmp_path / "nope.pth"))


class _Evil:
    def __reduce__(self):
        return (exec, ("open('MARKER', 'w').write('pwned')",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_in_a_weights_file_is_never_run(tmp_path, monkeypatch):
    import pickle

    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"9.weight": _Evil()}))
    spec, model = basic_cnn()
    with pytest.raises(ConfigError, match="Cannot read weights"):
        apply_weights(spec, model, "evil.pth")
    assert not (tmp_path / "MARKER").exists()


# --------------------------------------------------------------------------- training

SERVED_PREPROCESS = Preprocess(size=(24, 24), resize="shorter", crop_fraction=0.75,
                               interpolation="bicubic", mean=(0.5, 0.5, 0.5),
                               std=(0.5, 0.5, 0.5))


def served_spec(url: str, sha256: str | None) -> ModelSpec:
    base = get_model("basic-cnn").spec
    return ModelSpec("served-cnn", base.build, base.preprocess, weights=(
        WeightsSpec("first", SERVED_PREPROCESS, url=url, sha256=sha256),
        WeightsSpec("second", SERVED_PREPROCESS.with_size(32), url=url, sha256=sha256)))


class _ServedPlugin:
    """A model plugin whose weights come from a URL with a sha256 (the plugin guide's)."""

    def __init__(self, url: str, sha256: str) -> None:
        self.spec = served_spec(url, sha256)

    @hookimpl
    def register_models(self, register):
        register(self.spec)


@pytest.fixture
def served(cache, server):
    spec = get_model("basic-cnn").spec
    data = state_bytes(spec.build(3, image_size=SERVED_PREPROCESS.size))
    server.files["/files/" + NAME] = data
    load_plugins()
    plugin = _ServedPlugin(f"{server.url}/files/{NAME}", sha(data))
    pm.register(plugin, name="served-weights")
    yield server, data
    pm.unregister(name="served-weights")


def test_training_fetches_applies_and_records_the_weights_once(served, tmp_path, monkeypatch):
    from imgcls.checkpoint import load_checkpoint
    from imgcls.train import fit

    server, data = served
    data_dir = colour_data(tmp_path / "data")
    result = fit(tiny_config(data_dir, tmp_path / "runs", model="served-cnn", weights="imagenet",
                             epochs=1, img_size=None))
    loaded = load_checkpoint(result.best_path)
    training = loaded.manifest["training"]
    assert training["weights"] == {"tag": "first", "url": f"{server.url}/files/{NAME}",
                                   "sha256": sha(data)}
    assert loaded.preprocess == SERVED_PREPROCESS  # the weights' preprocessing is the run's
    assert server.requests == ["/files/" + NAME]
    # Loading, resuming or evaluating never fetches nor loads the pretrained weights.
    monkeypatch.setenv("IMGCLS_OFFLINE", "1")
    (tmp_path / "torch").rename(tmp_path / "gone")
    load_checkpoint(result.best_path)
    resumed = fit(resume=result.run_dir, epochs=2)
    assert load_checkpoint(resumed.best_path).manifest["training"]["weights"]["tag"] == "first"
    assert server.requests == ["/files/" + NAME]


def test_the_mirror_config_key_is_used_by_training(served, tmp_path):
    from imgcls.train import fit
    from imgcls.train.config import read_config_file

    server, data = served
    server.files["/m/" + NAME] = data
    toml = tmp_path / "c.toml"
    toml.write_text(f'weights_mirror = "{server.url}/m"\n')
    mirror = read_config_file(toml)["weights_mirror"]
    fit(tiny_config(colour_data(tmp_path / "data"), tmp_path / "runs", model="served-cnn",
                    weights="second", weights_mirror=mirror, epochs=1, img_size=24))
    assert server.requests == ["/m/" + NAME]


def test_a_checkpoint_is_evaluated_exported_and_explained_without_its_pretrained_weights(
        served, tmp_path, monkeypatch):
    """The weights were applied when training started: with their server gone, the cache
    removed and imgcls offline, eval, export, inference and explain run on the checkpoint."""
    from imgcls import Classifier, explain
    from imgcls.evaluate import evaluate_file
    from imgcls.export import export_onnx
    from imgcls.train import fit

    server, _ = served
    data_dir = colour_data(tmp_path / "data", per_class=4)
    result = fit(tiny_config(data_dir, tmp_path / "runs", model="served-cnn", weights="imagenet",
                             epochs=1, img_size=None))
    assert server.requests == ["/files/" + NAME]
    server.close()
    shutil.rmtree(tmp_path / "torch")
    monkeypatch.setenv("IMGCLS_OFFLINE", "1")
    evaluation, manifest = evaluate_file(result.best_path, str(data_dir), split="val",
                                         device="cpu")
    assert len(evaluation.paths) == 9 and manifest["training"]["weights"]["tag"] == "first"
    exported = export_onnx(result.best_path, tmp_path / "m.onnx")
    assert exported.parity.passed and exported.path.is_file()
    image = sorted((data_dir / "val" / "red").iterdir())[0]
    for model in (exported.path, result.best_path):
        [prediction] = Classifier.load(model, device="cpu").predict([image])
        assert prediction.label in ("red", "green", "blue")
    [explanation] = explain(result.best_path, [image], device="cpu")
    assert explanation.pixels.shape == (24, 24, 3)
    assert [cam.shape for cam in explanation.cams.values()] == [(24, 24)]
