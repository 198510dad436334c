"""Every command the docs show is run here, page by page, in the order of the page.

For README.md and each docs/*.md page, in a fresh sandbox folder:

- fenced blocks with a ``title="path"`` (```` ```toml title="my-plugin/pyproject.toml" ````)
  are files: they are written into the sandbox when reached. A title ending in
  `` (continued)`` appends to that file, after two blank lines;
- ```` ```bash ```` blocks are split into commands (backslash continuations joined, comments
  dropped) and run;
- ```` ```python ```` blocks without a title are executed, in this process, in one namespace
  per page (so a later block can use what an earlier one defined).

The sandbox holds small generated data under the placeholder paths the docs use, and
nothing else (the docs must use only these):

    path/to/cats-dogs/{train,val}/{cats,dogs}/   4 JPEGs per folder (cat.0.jpg, ...)
    path/to/photos/                              a.jpg ... l.jpg, more/m.png
    path/to/dogs-vs-cats/train.zip               Kaggle's layout: train/cat.0.jpg ...
                                                 dog.1249.jpg (one tiny JPEG's bytes)
    labels.csv (path,label), labels.txt (the same, ";"-separated),
    breeds.csv (file,breed; paths relative to path/to/photos), list.txt (one path a line)
    examples/, plugins/                          links to the repository's folders
    model.onnx                                   a trained run's export, only for the pages
                                                 in PRETRAINED, which start from it
    path/to/mobilenet_v3_small-047dcff4.pth      torchvision's file name, random weights
                                                 (models.md only)
    path/to/resnet10t.safetensors                a timm state dict, random weights (models.md,
                                                 when imgcls-timm is installed)
    torch-home/hub/checkpoints/resnet18-*.pth    the same for resnet18's default weights, in
                                                 the torch hub cache (WEIGHTS_PAGES only)

Every page runs with IMGCLS_OFFLINE=1 and TORCH_HOME in the sandbox: nothing is downloaded,
and ``--weights imagenet`` finds the stand-in above in the cache.

How commands run:

- ``imgcls ...`` without shell syntax runs in this process through ``imgcls.cli.main``, the
  function behind the ``imgcls`` program (this saves torch's import time per command).
- ``imgcls`` with pipes, globs or redirections, ``python examples/...``, ``torchrun`` and
  ``python -m torch.distributed.run`` run in bash with the test's virtual environment first
  on PATH. IMGCLS_CACHE_DIR points into the test's temporary folder.
- ``pip install`` and ``nox`` lines are not run: they change the environment. CI runs the
  README's two commands itself (``pip install -e . && imgcls train`` and
  ``pip install nox && nox -s tests``); ``nox -s tests`` installs ``.[dev,all]`` and the
  plugins, ``nox -s docs`` installs ``.[docs]``. The exception is a folder the page itself
  created (the plugin tutorial): it is installed with ``pip install --no-deps
  --no-build-isolation --target`` into the sandbox, and the folder and that target go on
  PYTHONPATH (folder first, so later edits take effect as with ``pip install -e``); the
  page's later commands then run in bash.
  ``python -m pytest`` runs the plugin tutorial's tests, in bash too.
- A command that needs a plugin (``--engine ray``: imgcls-ray, see NEEDS_PLUGIN) is not run
  when that plugin is not installed.
- Any other program must be in RUN_ALSO or SKIP below, with a reason.

On the pages in PRETRAINED, the first ``imgcls train ... --name X`` (the run the page then
uses, on path/to/cats-dogs) is not run: that run, trained once for all of them, is copied to the
folder the command names. It saves a training per page.

Commands run with at most MAX_EPOCHS epochs (``--epochs 150`` runs as ``--epochs 2``): the
pages show the epochs real data needs, the sandbox's 16 images need no more to run every
code path the command does (later epochs repeat the first ones' code).

Torch computes with one thread here (see one_torch_thread). Output is not compared with
the docs: the outputs shown there come from the real photos, these from generated ones.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent

# Pages that assume an exported model exists (model.onnx), or whose first training the
# trained run of the sandbox stands in for.
PRETRAINED = {"docs/training.md", "docs/inference.md", "docs/python-api.md",
              "docs/deployment.md", "docs/explain.md"}

# Programs besides imgcls / python examples / torchrun that may run, and why.
RUN_ALSO = {
    "find": "lists image paths for the stdin example",
    "mkdir": "makes the plugin tutorial's empty folder",
    "cd": "changes the folder of the page's later commands",
}
# Command prefixes that are shown but not run here, and why.
SKIP = {
    "pip install": "changes the environment; CI installs imgcls and the plugins",
    "python -m pip install": "changes the environment; CI installs imgcls and the plugins",
    "nox": "CI runs nox -s tests itself; it would run this test again",
    "torchrun --standalone --nproc-per-node 4": "needs 4 GPUs; the 2-process CPU line on the "
                                                "same page runs the same code with gloo",
    "ray start": "starts a Ray cluster that outlives the command; the page's local-cluster "
                 "runs go through the same pipeline",
    "imgcls train --model timm/convnext_nano.in12k_ft_in1k --weights imagenet":
        "downloads from the Hugging Face Hub; plugins/imgcls-timm/tests load Hub weights "
        "from a prepared cache",
    "imgcls infer model.onnx s3://my-bucket/photos": "needs a bucket, its credentials and a "
                                                     "cluster; plugins/imgcls-ray/tests runs "
                                                     "file:// URIs and a joined cluster",
}
# Words that make a command need a plugin, and the module that plugin installs: without
# it the command is shown but not run (CI installs every plugin, so it runs there).
NEEDS_PLUGIN = {"--engine ray": "imgcls_ray", "--model resnet18": "imgcls_torchvision",
                "timm/": "imgcls_timm"}
# Pages that fine-tune resnet18 from its ImageNet weights (a stand-in file in the cache).
WEIGHTS_PAGES = {"README.md", "docs/finetuning.md"}
MAX_EPOCHS = 2
EPOCHS = re.compile(r"(?<![\w-])(--epochs[ =])(\d+)")
WARMUP = re.compile(r"--warmup-epochs[ =]([\d.]+)")
SHELL_SYNTAX = re.compile(r"[|<>;&$*?`~]")  # outside quotes: bash must run the command
QUOTED = re.compile(r"'[^']*'|\"[^\"$`]*\"")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)(?P<attrs>[^\n]*)\n(?P<body>.*?)"
                   r"^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL)
TITLE = re.compile(r'title="([^"]+)"')
CONTINUED = " (continued)"


# --------------------------------------------------------------------------- reading pages


@dataclass
class Block:
    lang: str
    body: str
    title: str | None = None


def blocks(page: str) -> list[Block]:
    found = []
    for match in FENCE.finditer((ROOT / page).read_text()):
        indent = len(match["indent"])
        body = "".join("\n" if not line.strip() else
                       line[indent:] if not line[:indent].strip() else line
                       for line in match["body"].splitlines(keepends=True))
        title = TITLE.search(match["attrs"])
        found.append(Block(match["lang"], body, title.group(1) if title else None))
    return found


def commands(body: str) -> list[str]:
    """The commands of a bash block: continuations joined, comment lines dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def pipeline(command: str) -> list[list[str]]:
    """The words of each program in a command line (split at |, &&, ||, ;, &)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    parts: list[list[str]] = [[]]
    for token in lexer:
        if token in ("|", "||", "&&", ";", "&"):
            parts.append([])
        else:
            parts[-1].append(token)
    return [part for part in parts if part]


def capped(command: str) -> str:
    """The command with ``--epochs N`` lowered to MAX_EPOCHS where N is above it, but kept
    at least twice an explicit ``--warmup-epochs`` (train refuses a longer warm-up)."""
    warmup = WARMUP.search(command)
    cap = max(MAX_EPOCHS, math.ceil(2 * float(warmup[1]))) if warmup else MAX_EPOCHS
    return EPOCHS.sub(lambda m: m[1] + str(min(int(m[2]), cap)), command)


def needs_shell(command: str) -> bool:
    """Pipes, redirections, globs, variables: syntax only bash can run."""
    unquoted = re.sub(r"(^|\s)#.*", "", QUOTED.sub("''", command))
    return bool(SHELL_SYNTAX.search(unquoted))


def page_files(page: str) -> dict[str, str]:
    """The files a page writes (titled blocks), as they are after the whole page."""
    files: dict[str, str] = {}
    for block in blocks(page):
        if block.title:
            name = block.title.removesuffix(CONTINUED)
            files[name] = file_text(files.get(name, ""), block)
    return files


def file_text(existing: str, block: Block) -> str:
    """A titled block's file: its text, or, when continued, appended after two blank lines."""
    if not block.title.endswith(CONTINUED):
        return block.body
    return existing.rstrip("\n") + "\n\n\n" + block.body


# --------------------------------------------------------------------------- the sandbox


def _photo(rng: np.random.Generator, warm: bool, size: tuple[int, int]) -> Image.Image:
    colour = np.array((200, 120, 60) if warm else (60, 110, 200))
    noise = rng.integers(-40, 41, (size[1], size[0], 3))
    return Image.fromarray(np.clip(colour + noise, 0, 255).astype(np.uint8))


def make_data(root: Path, per_folder: int = 4) -> Path:
    """The placeholder data every page may use (see the module docstring)."""
    rng = np.random.default_rng(0)
    rows = []
    for split in ("train", "val"):
        for label, warm in (("cats", True), ("dogs", False)):
            folder = root / "path/to/cats-dogs" / split / label
            folder.mkdir(parents=True)
            for i in range(per_folder):
                size = (64, 48) if i % 2 else (48, 64)
                path = folder / f"{label[:-1]}.{i}.jpg"
                _photo(rng, warm, size).save(path, quality=90)
                rows.append((path.relative_to(root).as_posix(), label))
    _kaggle_zip(root / "path/to/dogs-vs-cats/train.zip", rng)
    photos = root / "path/to/photos"
    (photos / "more").mkdir(parents=True)
    names = [f"{chr(ord('a') + i)}.jpg" for i in range(12)]
    for i, name in enumerate(names):
        _photo(rng, i % 2 == 0, (80, 60)).save(photos / name, quality=90)
    _photo(rng, True, (60, 60)).save(photos / "more" / "m.png")
    (root / "labels.csv").write_text("path,label\n" + "".join(f"{p},{c}\n" for p, c in rows))
    (root / "labels.txt").write_text("path;label\n" + "".join(f"{p};{c}\n" for p, c in rows))
    (root / "breeds.csv").write_text("file,breed\n" + "".join(
        f"{name},{'siamese' if i % 2 == 0 else 'beagle'}\n" for i, name in enumerate(names)))
    (root / "list.txt").write_text("".join(f"path/to/photos/{name}\n" for name in names[:6]))
    for name in ("examples", "plugins"):
        (root / name).symlink_to(ROOT / name, target_is_directory=True)
    return root


def _kaggle_zip(path: Path, rng: np.random.Generator) -> None:
    """As many files as `imgcls data prepare`'s defaults take (1,250 a class), one JPEG's
    bytes under every name: the archive is what is being read, not the pictures."""
    buffer = io.BytesIO()
    _photo(rng, True, (16, 16)).save(buffer, format="JPEG")
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as archive:
        for label in ("cat", "dog"):
            for i in range(1250):
                archive.writestr(f"train/{label}.{i}.jpg", buffer.getvalue())


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch: pytest.MonkeyPatch):
    """One compute thread per process: on 2 shared cores, two threads each are several
    times slower (they wait for each other). Results do not depend on it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def base_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Placeholder data, plus a briefly trained basic-cnn run and its ONNX export."""
    import torch

    from imgcls.export import export_onnx
    from imgcls.train import fit

    root = make_data(tmp_path_factory.mktemp("docs-base") / "work")
    cwd, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(root)
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            fit(model="basic-cnn", data="path/to/cats-dogs", epochs=3, out="pretrained",
                name="basic-cnn", report=False, verbose=False)
            export_onnx("pretrained/basic-cnn/best.safetensors", "pretrained/model.onnx")
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return root


def sandbox_for(page: str, base: Path, tmp_path: Path) -> Path:
    work = tmp_path / "work"  # `..` from the sandbox stays inside tmp_path
    shutil.copytree(base, work, symlinks=True, ignore=shutil.ignore_patterns("pretrained"))
    if page in PRETRAINED:
        shutil.copy(base / "pretrained" / "model.onnx", work / "model.onnx")
    if page == "docs/models.md":
        # A stand-in for torchvision's ImageNet file: same architecture, random weights.
        import torch
        import torchvision

        weights = torchvision.models.mobilenet_v3_small().state_dict()
        torch.save(weights, work / "path/to/mobilenet_v3_small-047dcff4.pth")
        if importlib.util.find_spec("imgcls_timm"):  # a timm state dict, random weights
            import timm
            from safetensors.torch import save_file

            save_file(timm.create_model("resnet10t").state_dict(),
                      str(work / "path/to/resnet10t.safetensors"))
    if page in WEIGHTS_PAGES and importlib.util.find_spec("imgcls_torchvision") is not None:
        import torch
        import torchvision

        # Cached files are used as they are (only downloads are hash-checked).
        url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
        cache = work / "torch-home" / "hub" / "checkpoints"
        cache.mkdir(parents=True)
        torch.save(torchvision.models.resnet18().state_dict(), cache / url.rsplit("/", 1)[-1])
    return work


# --------------------------------------------------------------------------- running


@dataclass
class Runner:
    page: str
    cwd: Path
    pythonpath: list[str] = field(default_factory=list)
    namespace: dict = field(default_factory=dict)
    ran: list[tuple[str, float]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    pretrained: Path | None = None  # the run that stands in for the first training (PRETRAINED)

    def fail(self, command: str, code: object, output: str) -> None:
        pytest.fail(f"{self.page}: `{command}` failed ({code}):\n{output[-4000:]}",
                    pytrace=False)

    def write(self, block: Block) -> None:
        path = self.cwd / block.title.removesuffix(CONTINUED)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file_text(path.read_text() if path.exists() else "", block))

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                   COLUMNS="100")
        if self.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(self.pythonpath)
        return env

    def run(self, command: str) -> None:
        start = time.perf_counter()
        self._run(command)
        if self.ran and self.ran[-1][0] == command:
            self.ran[-1] = (command, time.perf_counter() - start)

    def _run(self, command: str) -> None:
        reason = next((why for prefix, why in SKIP.items()
                       if command == prefix or command.startswith(prefix + " ")), None)
        if (command.startswith(("pip install", "python -m pip install"))
                and self.local_install(command)):
            return
        missing = next((module for words, module in NEEDS_PLUGIN.items()
                        if words in command and importlib.util.find_spec(module) is None), None)
        reason = reason or (missing and f"the plugin providing {missing} is not installed")
        if reason:
            self.skipped.append((command, reason))
            return
        self.check_programs(command)
        shown, command = command, capped(command)
        words = shlex.split(command, comments=True)
        if self.pretrained and words[:2] == ["imgcls", "train"] and "--name" in words:
            name = words[words.index("--name") + 1]
            shutil.copytree(self.pretrained, self.cwd / "runs" / name)
            self.pretrained = None
            self.skipped.append((shown, f"the sandbox's trained run is copied to runs/{name}"))
            return
        if words[0] == "cd":
            self.cwd = (self.cwd / words[1]).resolve()
        elif words[0] == "imgcls":
            self.check_fast(words, command)
            if needs_shell(command) or self.pythonpath:
                self.bash(command)
            else:
                self.in_process(words[1:], command)
        else:
            self.bash(command)
        self.ran.append((shown, 0.0))

    def check_programs(self, command: str) -> None:
        for words in pipeline(command):
            program = words[0]
            allowed = (program in ("imgcls", "torchrun") or program in RUN_ALSO
                       or (program == "python" and len(words) > 1
                           and (words[1].startswith("examples/")
                                or words[1:3] in (["-m", "torch.distributed.run"],
                                                  ["-m", "pytest"]))))
            if not allowed:
                pytest.fail(f"{self.page}: `{command}` runs {program!r}, which this test does "
                            "not know: add it to RUN_ALSO or SKIP with a reason.", pytrace=False)

    def check_fast(self, words: list[str], command: str) -> None:
        given = {"--data", "-d", "--config", "-c", "--resume"}
        if words[1:2] == ["train"] and not given & {w.split("=")[0] for w in words}:
            pytest.fail(f"{self.page}: `{command}` trains on the 5,000-image shapes set "
                        "(minutes); show it with --data path/to/cats-dogs.", pytrace=False)

    def local_install(self, command: str) -> bool:
        if len(pipeline(command)) > 1:
            return False
        target = shlex.split(command)[-1]
        folder = (self.cwd / target).resolve()
        if target == "." or not folder.is_dir() or not folder.is_relative_to(self.cwd.resolve()):
            return False
        if importlib.util.find_spec("setuptools") is None:
            pytest.skip("installing the page's package offline needs setuptools")
        site = self.cwd / ".site-packages"
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--no-build-isolation", "--target", str(site), str(folder)],
            cwd=self.cwd, capture_output=True, text=True, timeout=300)
        if result.returncode:
            self.fail(command, result.returncode, result.stdout + result.stderr)
        self.pythonpath = [str(folder), str(site), *self.pythonpath]
        self.ran.append((command, 0.0))
        return True

    def in_process(self, args: list[str], command: str) -> None:
        from imgcls.cli import main

        out = io.StringIO()
        previous = os.getcwd()
        os.chdir(self.cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = main(args)
        finally:
            os.chdir(previous)
        if code:
            self.fail(command, code, out.getvalue())

    def bash(self, command: str) -> None:
        result = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env(),
                                capture_output=True, text=True, timeout=600)
        if result.returncode:
            self.fail(command, result.returncode, result.stdout + result.stderr)

    def python(self, code: str) -> None:
        start = time.perf_counter()
        out = io.StringIO()
        previous = os.getcwd()
        os.chdir(self.cwd)
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"<{self.page} python block>", "exec"), self.namespace)
        except Exception as exc:
            self.fail(code.strip().splitlines()[0], repr(exc), out.getvalue())
        finally:
            os.chdir(previous)
        self.ran.append((code.strip().splitlines()[0], time.perf_counter() - start))


def run_page(page: str, work: Path, pretrained: Path | None = None) -> Runner:
    runner = Runner(page, work, pretrained=pretrained)
    for block in blocks(page):
        if block.title:
            runner.write(block)
        elif block.lang in ("bash", "sh", "shell"):
            for command in commands(block.body):
                runner.run(command)
        elif block.lang == "python":
            runner.python(block.body)
    return runner


# --------------------------------------------------------------------------- tests


def test_pages_are_found():
    assert "README.md" in PAGES and "docs/tutorial.md" in PAGES
    assert set(PAGES) >= PRETRAINED | SLOW


# Pages whose commands start several interpreters (torchrun, an installed plugin): ~30 s each.
# finetuning.md trains resnet18 at 224 px four times (~2 minutes on 2 busy cores).
SLOW = {"docs/distributed.md", "docs/writing-a-plugin.md", "docs/finetuning.md"}


@pytest.mark.parametrize("page", [pytest.param(page, marks=pytest.mark.slow) if page in SLOW
                                  else page for page in PAGES])
def test_every_command_on_the_page_runs(page, base_sandbox, tmp_path, monkeypatch):
    if page in ("docs/models.md", "docs/finetuning.md"):
        pytest.importorskip("imgcls_torchvision", reason="the torchvision plugin is not installed")
    work = sandbox_for(page, base_sandbox, tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(work / "torch-home"))
    monkeypatch.setenv("IMGCLS_OFFLINE", "1")
    pretrained = base_sandbox / "pretrained" / "basic-cnn" if page in PRETRAINED else None
    runner = run_page(page, work, pretrained)
    for command, seconds in runner.ran:
        print(f"{seconds:6.1f} s  {command}")
    for command, reason in runner.skipped:
        print(f"not run: {command}  ({reason})")
    if page != "README.md":
        assert runner.ran or not any(b.lang in ("bash", "python") for b in blocks(page))


def test_every_page_is_in_the_site_navigation():
    nav = set(re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(),
                         flags=re.MULTILINE))
    assert nav == {page.removeprefix("docs/") for page in PAGES if page != "README.md"}


def test_commands_join_continuations_and_drop_comments():
    body = "# a comment\nimgcls export onnx a \\\n    -o b.onnx   # trailing\n\nimgcls inspect b\n"
    assert commands(body) == ["imgcls export onnx a -o b.onnx   # trailing", "imgcls inspect b"]
    assert pipeline("find . -name '*.jpg' | imgcls infer m.onnx - # note") == [
        ["find", ".", "-name", "*.jpg"], ["imgcls", "infer", "m.onnx", "-"]]
    assert not needs_shell('imgcls train --data-opt delimiter=";" -a "a,b"  # a | b')
    assert needs_shell("imgcls infer m.onnx *.jpg") and needs_shell("imgcls x > out.txt")


def test_epochs_above_the_cap_are_lowered_to_it():
    assert capped("imgcls train -d d --epochs 150 -b 64") == "imgcls train -d d --epochs 2 -b 64"
    assert capped("imgcls audit --epochs=10 --folds 5") == "imgcls audit --epochs=2 --folds 5"
    assert capped("imgcls train --epochs 60 --warmup-epochs 2") == (
        "imgcls train --epochs 4 --warmup-epochs 2")
    assert capped("imgcls train --epochs 1 --freeze-backbone-epochs 1") == (
        "imgcls train --epochs 1 --freeze-backbone-epochs 1")
