"""int8 export: onnxruntime's static QDQ quantisation behind an accuracy gate.

Weights are quantised to int8 per output channel, activations to uint8 per tensor,
with ranges from MinMax calibration on real images decoded by the shared decoder.
uint8 activations with int8 weights are what onnxruntime's x86 kernels run fast:
with int8 activations resnet-s ran at 0.75x the float model's speed, with uint8 at
2.0x (basic-cnn 1.17x and 1.28x; see docs/deployment.md). The
classifier head (the last Gemm, MatMul or Conv and what follows it) stays float:
int8 logits round close calls to the same value, and the head is a small part of
the weights.

The images of DATA are split once, deterministically (sorted, then shuffled with
seed ``SPLIT_SEED``): the first ``calib_images`` calibrate, the rest (up to
``HELD_OUT_MAX``) are held out, and the int8 model must give the float model's
top-1 class on at least ``min_agreement`` of them. A ``min_agreement`` above 1
can never be met: the export then always fails (the tests use that).

The calibration fingerprint hashes the calibration files' contents, not their
paths: the same images copied elsewhere give the same fingerprint.

Nothing here imports torch or onnxruntime at import time, so the command line can
show the defaults cheaply.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ExportError
from ..specs import Preprocess

CALIB_IMAGES = 256
MIN_AGREEMENT = 0.99
MIN_HELD_OUT = 20
HELD_OUT_MAX = 500
SPLIT_SEED = 0
POOL_SCAN = 10_000  # paths listed from a --calibrate folder before splitting
CALIB_BATCH = 32
SPEED_BATCH = 64
SPEED_ROUNDS = 5
METHOD = {"method": "static", "format": "QDQ", "weights": "per-channel int8",
          "activations": "per-tensor uint8", "calibration_method": "MinMax"}
_WEIGHTED = {"Gemm", "MatMul", "Conv"}

ToInput = Callable[[np.ndarray], np.ndarray]  # uint8 NHWC pixels -> the graph's input


@dataclass(frozen=True)
class Int8Options:
    calibrate: str | None = None
    calib_images: int = CALIB_IMAGES
    min_agreement: float = MIN_AGREEMENT
    # A multi-label model's per-class thresholds: the gate then counts images whose whole
    # label set agrees, since a set is what such a model predicts.
    thresholds: tuple[float, ...] | None = None


def int8_options(int8: bool, calibrate: str | None, calib_images: int | None,
                 min_agreement: float | None, fp16: bool = False) -> Int8Options | None:
    """The checked int8 options, or None without ``int8``."""
    if not int8:
        given = [name for name, value in (("--calibrate", calibrate),
                                          ("--calib-images", calib_images),
                                          ("--min-agreement", min_agreement)) if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} only apply with --int8.",
                              "Add --int8, or leave them out.")
        return None
    if fp16:
        raise ConfigError("--int8 and --fp16 cannot be combined.", "Choose one precision.")
    calib_images = CALIB_IMAGES if calib_images is None else calib_images
    if isinstance(calib_images, bool) or not isinstance(calib_images, int) or calib_images < 1:
        raise ConfigError(f"--calib-images must be a whole number of at least 1, got "
                          f"{calib_images!r}.", f"The default is {CALIB_IMAGES}.")
    min_agreement = MIN_AGREEMENT if min_agreement is None else float(min_agreement)
    if not math.isfinite(min_agreement) or min_agreement < 0:
        raise ConfigError(f"--min-agreement must be a finite number of at least 0, got "
                          f"{min_agreement!r}.", f"It is a fraction; the default is "
                                                 f"{MIN_AGREEMENT:g} (99%).")
    return Int8Options(calibrate, calib_images, min_agreement)


# --------------------------------------------------------------------------- the images


def list_images(data: str) -> tuple[list[str], str]:
    """Every image of ``data``: a folder (searched recursively), or a .csv or dataset name."""
    from ..data import load_dataset
    from ..infer.sources import iter_paths
    from ..registry import has_dataset

    path = Path(data)
    if path.is_dir():
        return list(islice(iter_paths([data]), POOL_SCAN)), data
    if not path.exists() and not has_dataset(data.partition(":")[0]):
        raise DataError(f"Calibration data not found: {data!r} is neither a folder, a file "
                        "nor a dataset name.",
                        "Pass --calibrate with a folder of images like those the model will see.")
    dataset = load_dataset(data)
    return [str(p) for p, _ in [*dataset.train, *(dataset.val or [])]], data


@dataclass
class CalibrationPlan:
    calibration: list[str]
    held_out: list[str]
    source: str

    def fingerprint(self) -> str:
        """sha256 over the sorted sha256 digests of the calibration files' bytes (16 hex)."""
        digests = sorted(hashlib.sha256(Path(p).read_bytes()).hexdigest()
                         for p in self.calibration)
        return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


def split_images(paths: Sequence[str], source: str, calib_images: int) -> CalibrationPlan:
    """Calibration images and held-out images, disjoint and the same on every run."""
    unique = sorted(set(paths))
    if not unique:
        raise DataError(f"No images found in {source} for int8 calibration.",
                        "Pass --calibrate with a folder of images like those the model will see.")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    calibration, held_out = shuffled[:calib_images], shuffled[calib_images:]
    if len(held_out) < MIN_HELD_OUT:
        most = len(unique) - MIN_HELD_OUT
        raise DataError(
            f"{source} holds {len(unique)} images: {len(calibration)} for calibration leave "
            f"{len(held_out)} held out, and the int8 accuracy gate needs at least "
            f"{MIN_HELD_OUT}.",
            (f"Pass --calib-images {most} or fewer, or " if most >= 1 else "Pass ")
            + "--calibrate with a larger folder of images.")
    return CalibrationPlan(calibration, held_out[:HELD_OUT_MAX], source)


def decode_all(paths: Sequence[str], preprocess: Preprocess) -> np.ndarray:
    from ..images import load_pixels

    return np.stack([load_pixels(p, preprocess) for p in paths])


# --------------------------------------------------------------------------- quantising


def _reader(batches: list[dict[str, np.ndarray]]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        """The calibration images, a batch at a time, as the graph's input."""

        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return Batches()


def head_nodes(proto: Any) -> list[str]:
    """The last weighted node and every node after it on the way to the output."""
    producers = {out: node for node in proto.graph.node for out in node.output}
    names, node = [], producers.get(proto.graph.output[0].name)
    while node is not None and len(names) < 16:
        names.append(node.name)
        if node.op_type in _WEIGHTED:
            break
        node = next((producers[i] for i in node.input if i in producers), None)
    return names


def needs_reduced_range() -> bool:
    """True on x86 CPUs without VNNI, where onnxruntime's u8 x s8 kernels can saturate.

    onnxruntime's quantisation docs: on AVX2/AVX-512 without VNNI, full 8-bit weights may
    overflow the 16-bit intermediate sums; 7-bit weights (``reduce_range``) avoid it.
    Measured on an AVX2-only EPYC: a basic-cnn's agreement went from 95.0% to the gate's 99%.
    """
    forced = os.environ.get("IMGCLS_INT8_WEIGHT_BITS", "")
    if forced in ("7", "8"):  # lets one test run prove the other CPU's path
        return forced == "7"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return True  # not Linux: be safe, 7-bit weights cost little accuracy
    return not re.search(r"\b(avx512_vnni|avx_vnni)\b", flags)


def quantise(float_path: Path, int8_path: Path, calibration: np.ndarray, input_name: str,
             to_input: ToInput) -> int:
    """Write the int8 QDQ model of ``float_path``, calibrated on uint8 NHWC pixels;
    returns the bits its weights use (7 where :func:`needs_reduced_range`, else 8)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = int8_path.with_name("prepared.onnx")
    reduced = needs_reduced_range()
    batches = [{input_name: to_input(calibration[i:i + CALIB_BATCH])}
               for i in range(0, len(calibration), CALIB_BATCH)]
    try:
        # onnxruntime's advice (and its warning otherwise): shapes inferred and the graph
        # optimised before the quantiser looks at it.
        quant_pre_process(str(float_path), str(prepared))
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator narrates on stdout
            quantize_static(str(prepared), str(int8_path), _reader(batches),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                            reduce_range=reduced,
                            nodes_to_exclude=head_nodes(onnx.load(str(prepared))))
    except Exception as exc:  # onnxruntime's quantiser raises untyped errors
        raise ExportError(f"onnxruntime could not quantise the model: {exc}",
                          "Export without --int8, and report this with the model name.") from exc
    return 7 if reduced else 8


# --------------------------------------------------------------------------- the gate


@dataclass
class Int8Report:
    images: int
    source: str
    top1_agreement: float
    min_agreement: float
    float_bytes: int
    int8_bytes: int
    float_images_per_second: float
    int8_images_per_second: float
    batch: int
    threads: int
    calibration_images: int
    calibration_fingerprint: str
    weight_bits: int  # 7 on x86 CPUs without VNNI (see needs_reduced_range)

    @property
    def passed(self) -> bool:
        return self.top1_agreement >= self.min_agreement

    @property
    def smaller(self) -> float:
        return self.float_bytes / self.int8_bytes

    @property
    def faster(self) -> float:
        return self.int8_images_per_second / self.float_images_per_second

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def manifest_section(self) -> dict[str, Any]:
        """What the model's manifest records under export.quantization."""
        gate = {k: v for k, v in asdict(self).items()
                if k not in ("source", "weight_bits") and not k.startswith("calibration")}
        return dict(METHOD) | {"weight_bits": self.weight_bits,
            "calibration": {"images": self.calibration_images, "source": self.source,
                            "fingerprint": self.calibration_fingerprint,
                            "split_seed": SPLIT_SEED},
            "gate": gate | {"passed": self.passed}}

    def summary(self) -> str:
        return (f"top-1 agreement {self.top1_agreement:.1%} (minimum {self.min_agreement:.1%}) "
                f"on {self.images} held-out images; size float {_mb(self.float_bytes)}, int8 "
                f"{_mb(self.int8_bytes)} ({self.smaller:.1f}x smaller); images/s float "
                f"{self.float_images_per_second:,.0f}, int8 {self.int8_images_per_second:,.0f} "
                f"({self.faster:.2f}x; batch {self.batch}, {self.threads} threads)")


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def _top1(session: Any, inputs: list[np.ndarray],
          thresholds: tuple[float, ...] | None = None) -> np.ndarray:
    """Each image's top class, or (with ``thresholds``) its label set as a 0/1 row."""
    name = session.get_inputs()[0].name
    outputs = np.concatenate([session.run(None, {name: x})[0] for x in inputs])
    if thresholds is None:
        return outputs.argmax(1)
    return outputs >= np.asarray(thresholds)[None, :]


def _rates(sessions: Sequence[Any], batch: np.ndarray) -> list[float]:
    """Images/s of each session on one batch: interleaved rounds, median per session."""
    name = sessions[0].get_inputs()[0].name
    times: list[list[float]] = [[] for _ in sessions]
    for session in sessions:
        session.run(None, {name: batch})  # warm-up
    for _ in range(SPEED_ROUNDS):
        for session, taken in zip(sessions, times, strict=True):
            started = time.perf_counter()
            session.run(None, {name: batch})
            taken.append(time.perf_counter() - started)
    return [len(batch) / statistics.median(taken) for taken in times]


def gate(float_path: Path, int8_path: Path, held_out: np.ndarray, to_input: ToInput,
         plan: CalibrationPlan, options: Int8Options, weight_bits: int) -> Int8Report:
    """The int8 file against the float file: agreement, size and speed side by side."""
    from ..infer.providers import make_session
    from ..system import usable_cores

    threads = usable_cores()
    sessions = [make_session(p, "cpu", threads=threads) for p in (float_path, int8_path)]
    inputs = [to_input(held_out[i:i + SPEED_BATCH]) for i in range(0, len(held_out),
                                                                    SPEED_BATCH)]
    expected, actual = (_top1(s, inputs, options.thresholds) for s in sessions)
    same = expected == actual
    float_rate, int8_rate = _rates(sessions, inputs[0])
    return Int8Report(
        images=len(held_out), source=plan.source,
        top1_agreement=float((same.all(1) if same.ndim == 2 else same).mean()),
        min_agreement=options.min_agreement, float_bytes=float_path.stat().st_size,
        int8_bytes=int8_path.stat().st_size, float_images_per_second=float_rate,
        int8_images_per_second=int8_rate, batch=len(inputs[0]), threads=threads,
        calibration_images=len(plan.calibration), calibration_fingerprint=plan.fingerprint(),
        weight_bits=weight_bits)


def quantise_and_gate(float_path: Path, plan: CalibrationPlan, preprocess: Preprocess,
                      input_name: str, to_input: ToInput,
                      options: Int8Options) -> tuple[Path, Int8Report]:
    """The int8 model (next to ``float_path``) and its gate report."""
    int8_path = float_path.with_name("model.int8.onnx")
    bits = quantise(float_path, int8_path, decode_all(plan.calibration, preprocess), input_name,
                    to_input)
    report = gate(float_path, int8_path, decode_all(plan.held_out, preprocess), to_input,
                  plan, options, bits)
    return int8_path, report
