"""Train, export and predict from Python with imgcls's API.

    python examples/train_and_predict.py path/to/cats-dogs --epochs 5 --predict path/to/photos

DATA is anything `imgcls train --data` accepts: a folder of class folders (with
or without train/ and val/), a CSV file, or a dataset name such as shapes.
"""

from __future__ import annotations

import argparse
from itertools import islice

from imgcls import Classifier, fit
from imgcls.export import export_onnx
from imgcls.infer.sources import iter_paths


def main() -> None:
    parser = argparse.ArgumentParser(description="Train, export and predict with the Python API.")
    parser.add_argument("data", help="a folder of class folders, a CSV file or a dataset name")
    parser.add_argument("--model", default="basic-cnn")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out-dir", default="runs", help="folder that holds run folders")
    parser.add_argument("--predict", nargs="*", default=[],
                        help="images or folders to classify (the first 8 images found)")
    args = parser.parse_args()

    # 1. Train. fit() takes every `imgcls train` option as a keyword (dashes become
    #    underscores; --out-dir is out=), or a TrainConfig, and writes the same run
    #    folder as the CLI.
    result = fit(model=args.model, data=args.data, epochs=args.epochs, out=args.out_dir,
                 name=f"{args.model}-api", exist_ok=True)
    print(f"best val accuracy {result.best['val_acc']:.1%} at epoch {result.best['epoch']}")
    print(f"classes: {', '.join(result.classes)}; checkpoint: {result.best_path}")

    # 2. Export to ONNX. The file is written only if onnxruntime agrees with PyTorch.
    exported = export_onnx(result.best_path, result.run_dir / "model.onnx")
    print(f"exported {exported.path} (max |Δ| vs PyTorch {exported.parity.max_abs_diff:.2g})")

    # 3. Predict. Classifier takes the .onnx file (onnxruntime) or the checkpoint (PyTorch),
    #    and paths, PIL images or numpy arrays.
    clf = Classifier.load(exported.path)
    paths = list(islice(iter_paths(args.predict), 8)) if args.predict else []
    for prediction in clf.predict(paths, top_k=2):
        ranked = ", ".join(f"{label} {score:.2f}" for label, score in
                           zip(prediction.labels, prediction.scores, strict=True))
        print(f"{prediction.path}: {ranked}")


if __name__ == "__main__":
    main()
