"""Training images/s of the real input pipeline versus compute only, side by side.

    python benchmarks/data_pipeline.py [--data DIR] [--epochs 4] [--augment none,seed]

"real pipeline": the path ``imgcls train`` takes after its first epoch:
decode_samples (the cache, decoded once before the timed epochs) -> make_loader
(batched fetch + augmentation) -> DeviceNormaliser -> forward/backward/step.
"compute only": the identical step over the same number of pre-made uint8
batches held in a list (no loader, no augmentation). The two alternate batch by
batch (epoch by epoch when the loader has worker processes), so that load from
other processes hits both alike; it prints total images / total seconds of each
over the timed epochs and the ratio real / compute (1.0 = the pipeline is free).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hardware import print_header  # benchmarks/hardware.py

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "../shared/data/cats-dogs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="data set (relative to repo root)")
    parser.add_argument("--model", default="basic-cnn")
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per arm")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", default="none,seed", help="comma-separated presets")
    parser.add_argument("--cache", default="memory", choices=("memory", "disk", "none"))
    parser.add_argument("--workers", type=int, default=None, help="default: auto")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many images")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    data = (ROOT / args.data).resolve()
    if not data.is_dir():
        print(f"error: data folder not found: {data}", file=sys.stderr)
        print("hint: pass --data with a folder of class sub-folders", file=sys.stderr)
        return 2
    return run(args, data)


def run(args: argparse.Namespace, data: Path) -> int:
    import os

    import torch

    from imgcls.data import load_dataset
    from imgcls.data.cache import decode_samples
    from imgcls.data.loader import DeviceNormaliser, make_loader
    from imgcls.registry import get_model

    if args.threads:
        torch.set_num_threads(args.threads)
    print_header()  # after --threads: the header names them
    spec = get_model(args.model).spec
    samples = load_dataset(str(data)).train
    samples = samples[: args.limit] if args.limit else samples
    started = time.perf_counter()
    images = decode_samples(samples, spec.preprocess, mode=args.cache)
    decode_s = time.perf_counter() - started
    loader_workers = make_loader(images, args.batch_size, workers=args.workers).num_workers
    print(f"data: {len(images)} training images from {data}, {len(images.skipped)} skipped")
    print(f"model: {args.model} at {spec.preprocess.size[0]}x{spec.preprocess.size[1]}, "
          f"batch {args.batch_size}, {args.epochs} timed epochs per arm, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"loader workers {loader_workers}")
    print(f"first epoch decode (--cache {args.cache}): {decode_s:.1f} s = "
          f"{len(samples) / decode_s:.0f} images/s")
    normalize = DeviceNormaliser(spec.preprocess, torch.device("cpu"))
    print(f"{'augment':>8}  {'real pipeline':>15}  {'compute only':>15}  {'ratio':>6}")
    for augment in args.augment.split(","):
        real, compute = measure(args, spec, images, normalize, augment, make_loader)
        print(f"{augment:>8}  {real:>9.0f} img/s  {compute:>9.0f} img/s  {real / compute:>6.2f}",
              flush=True)
    return 0


def measure(args, spec, images, normalize, augment: str, make_loader) -> tuple[float, float]:
    import torch

    from imgcls.data.augment import build_pipeline

    torch.manual_seed(0)
    pipeline = build_pipeline(augment)
    classes = int(images.labels.max()) + 1
    model = spec.build(classes, image_size=spec.preprocess.size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = make_loader(images, args.batch_size, transform=pipeline, shuffle=True,
                         workers=args.workers)
    premade = [(batch.clone(), labels.clone()) for batch, labels in
               make_loader(images, args.batch_size, shuffle=True, workers=0)]

    def step(batch, labels, mix: list) -> int:
        inputs, targets = normalize(batch), labels
        if mix:  # as imgcls train: mixup/cutmix on normalised images, soft targets
            one_hot = torch.nn.functional.one_hot(labels, classes).float()
            inputs, targets = pipeline.mix(inputs, one_hot)
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # the training loop reads the loss every step, which syncs
        return len(labels)

    model.train()
    for batch, labels in loader:  # the first epoch after decoding: warm-up, not timed
        step(batch, labels, pipeline.batch)
    clock = {"real": [0, 0.0], "compute": [0, 0.0]}

    def timed(arm: str, work) -> None:
        started = time.perf_counter()
        clock[arm][0] += work()
        clock[arm][1] += time.perf_counter() - started

    for _ in range(args.epochs):
        if loader.num_workers:  # workers prefetch in the background: alternate whole epochs
            timed("real", lambda: sum(step(b, y, pipeline.batch) for b, y in loader))
            timed("compute", lambda: sum(step(b, y, []) for b, y in premade))
            continue
        # Alternate batch by batch, so that load from other processes hits both arms alike.
        batches = iter(loader)
        for batch_index in range(len(loader)):
            timed("real", lambda it=batches: step(*next(it), pipeline.batch))
            timed("compute", lambda i=batch_index: step(*premade[i], []))
    return tuple(images_seen / seconds for images_seen, seconds in clock.values())


if __name__ == "__main__":
    raise SystemExit(main())
