"""Classify images with a model exported by `imgcls export onnx`, using only
onnxruntime, numpy and Pillow (no imgcls, no torch).

    python examples/deploy_onnxruntime.py model.onnx path/to/photos/a.jpg path/to/photos/b.jpg

Everything needed comes from the .onnx file: the class names, the preprocessing
and the names of the graph's input and output are in the JSON manifest stored in
its metadata under "imgcls.manifest". All export variants work: plain (float
NCHW input, logits out), --embed-preprocessing (uint8 NHWC pixels in) and
--softmax (probabilities out).

The pixels match imgcls's own decoder for ordinary RGB and grayscale photos
(EXIF rotation, JPEG draft decoding, the same resize). imgcls also handles
transparency (composited over white), 16-bit and CMYK images, and decompression
bombs; add that here if your images need it.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

ORIENTATION = 0x0112  # the EXIF tag


def load_model(path: str) -> tuple[ort.InferenceSession, dict]:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    manifest = json.loads(session.get_modelmeta().custom_metadata_map["imgcls.manifest"])
    return session, manifest


def output_size(image_size: tuple[int, int], pre: dict) -> tuple[int, int]:
    """(width, height) after resizing, before the centre crop of "shorter" mode."""
    height, width = pre["size"]
    if pre["resize"] == "stretch":
        return width, height
    fraction = pre["crop_fraction"]
    cover_h = max(height, int(height / fraction + 1e-6))
    cover_w = max(width, int(width / fraction + 1e-6))
    scale = max(cover_w / image_size[0], cover_h / image_size[1])
    # The long side is truncated, as torchvision's Resize (and imgcls) do.
    return (max(cover_w, int(image_size[0] * scale + 1e-6)),
            max(cover_h, int(image_size[1] * scale + 1e-6)))


def load_pixels(path: str, pre: dict) -> np.ndarray:
    """Decode, rotate upright, resize (and centre-crop): HxWx3 uint8 RGB."""
    with Image.open(path) as image:
        swapped = image.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)  # rotated by 90 degrees
        width, height = image.size
        want = output_size((height, width) if swapped else (width, height), pre)
        want = want[::-1] if swapped else want
        if want[0] * 2 <= width and want[1] * 2 <= height:
            image.draft("RGB", want)  # JPEG: decode at 1/2, 1/4 or 1/8 scale, as imgcls does
        image = ImageOps.exif_transpose(image).convert("RGB")
    height, width = pre["size"]
    size = output_size(image.size, pre)
    if size != image.size:
        image = image.resize(size, Image.Resampling[pre["interpolation"].upper()])
    left, top = round((size[0] - width) / 2), round((size[1] - height) / 2)
    return np.asarray(image.crop((left, top, left + width, top + height)), dtype=np.uint8)


def model_input(pixels: np.ndarray, pre: dict) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW: scaled to value_range, then (x - mean) / std."""
    if pre["channel_order"] == "BGR":
        pixels = pixels[..., ::-1]
    low, high = pre["value_range"]
    std, mean = np.asarray(pre["std"]), np.asarray(pre["mean"])
    mul = ((high - low) / 255 / std).astype(np.float32).reshape(1, 3, 1, 1)
    add = ((low - mean) / std).astype(np.float32).reshape(1, 3, 1, 1)
    return pixels.transpose(0, 3, 1, 2) * mul + add


def predict(session: ort.InferenceSession, manifest: dict, paths: list[str]) -> np.ndarray:
    """Class probabilities, one row per path."""
    pre, export = manifest["preprocess"], manifest["export"]
    pixels = np.stack([load_pixels(p, pre) for p in paths])
    feed = pixels if export["preprocessing"] == "embedded" else model_input(pixels, pre)
    (out,) = session.run([export["output_name"]], {export["input_name"]: feed})
    if export["outputs"] == "probabilities":
        return out
    exp = np.exp(out - out.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def print_label_sets(paths: list[str], probabilities: np.ndarray, classes: list[str],
                     thresholds: list[float]) -> None:
    """A multi-label model's rows, as imgcls infer writes them: the classes at or above
    their thresholds (;-joined, empty for none), then each class's probability."""
    print("path,labels," + ",".join(f"prob_{name}" for name in classes))
    for path, row in zip(paths, probabilities, strict=True):
        chosen = ";".join(c for c, p, t in zip(classes, row, thresholds, strict=True) if p >= t)
        print(f"{path},{chosen}," + ",".join(f"{p:.6f}" for p in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an .onnx file written by imgcls export onnx")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--top-k", type=int, default=1)
    args = parser.parse_args()

    session, manifest = load_model(args.model)
    classes = manifest["classes"]
    probabilities = predict(session, manifest, args.images)
    if manifest.get("task") == "multilabel":  # one sigmoid per class, a threshold each
        print_label_sets(args.images, probabilities, classes, manifest["thresholds"])
        return
    print("path,label,confidence" + "".join(
        f",label_{i},confidence_{i}" for i in range(2, args.top_k + 1)))
    for path, row in zip(args.images, probabilities, strict=True):
        best = np.argsort(-row, kind="stable")[:args.top_k]
        print(path + "".join(f",{classes[i]},{row[i]:.6f}" for i in best))


if __name__ == "__main__":
    main()
