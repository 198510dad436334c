"""Documented commands use the run folders their own page creates, and no two collide.

A user follows the README's Quickstart (``runs/basic-cnn``), then the tutorial: a page
that trains with the default name and then reads ``runs/basic-cnn/`` would read the
Quickstart's model (its own went to ``runs/basic-cnn-2``). So every command that reads
``runs/X/...`` (bash and python blocks of README.md and docs/*.md) must come after a
command on the same page that creates ``runs/X`` (``imgcls train --name X`` or the model's
default name, ``imgcls tune``'s ``tune-STUDY``, ``fit(name=...)``), and no other documented
command may create ``runs/X`` too (the same command shown on two pages is one command).
The examples must not write into a folder the docs create.
"""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from pathlib import Path

from .test_docs_snippets import PAGES, ROOT, blocks, commands, page_files, pipeline

READ = re.compile(r"(?<![\w./-])runs/([A-Za-z0-9][\w.-]*)/")
FIT = re.compile(r"\bfit\(([^)]+)\)", re.DOTALL)  # a call, not `fit()` in a sentence
KEYWORD = re.compile(r"\b(name|model)\s*=\s*[\"']([^\"']+)[\"']")
DEFAULT_MODEL = "basic-cnn"


def _option(words: list[str], *flags: str) -> str | None:
    for i, word in enumerate(words):
        for flag in flags:
            if word == flag and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(flag + "="):
                return word.split("=", 1)[1]
    return None


def _toml_value(text: str, key: str) -> str | None:
    found = re.search(rf'^{key}\s*=\s*"([^"]+)"', text, flags=re.MULTILINE)
    return found.group(1) if found else None


def created_by_words(words: list[str], files: dict[str, str]) -> str | None:
    """The run folder (under runs/) an imgcls train / tune command line creates."""
    if "imgcls" not in words:
        return None
    args = words[words.index("imgcls") + 1:]
    if not args or args[0] not in ("train", "tune") or _option(args, "--resume"):
        return None
    if _option(args, "--out-dir") not in (None, "runs"):
        return None
    config = files.get(_option(args, "--config", "-c") or "", "")
    model = _option(args, "--model", "-m") or _toml_value(config, "model") or DEFAULT_MODEL
    if args[0] == "tune":
        data = _option(args, "--data", "-d") or "shapes"
        return "tune-" + (_option(args, "--study") or f"{model}-{Path(data).name}")
    return _option(args, "--name") or _toml_value(config, "name") or model.replace("/", "-")


def created_by_python(code: str) -> list[tuple[str, str]]:
    """(run folder, the call) for each ``fit(...)`` call in a python block."""
    found = []
    for call in FIT.finditer(code):
        keywords = dict(KEYWORD.findall(call.group(1)))
        named = re.search(r"\bname\s*=\s*([^,)]+)", call.group(1))
        if named and "name" not in keywords:  # computed (f"{model}-api"): not a fixed folder
            keywords["name"] = "{" + named.group(1).strip() + "}"
        found.append((keywords.get("name") or keywords.get("model", DEFAULT_MODEL),
                      " ".join(call.group(0).split())))
    return found


def page_events(page: str) -> list[tuple[str, str, str]]:
    """The page's ("create" | "read", run folder, command) in the order of the page."""
    events = []
    files = page_files(page)
    for block in blocks(page):
        if block.title:
            continue
        if block.lang in ("bash", "sh", "shell"):
            for command in commands(block.body):
                line = re.sub(r"\s+#.*$", "", command)
                events += [("read", name, command) for name in READ.findall(line)]
                for words in pipeline(line):
                    name = created_by_words(words, files)
                    if name:
                        events.append(("create", name, " ".join(words)))
        elif block.lang == "python":
            code = re.sub(r"#.*", "", block.body)
            for name, call in created_by_python(code):
                events.append(("create", name, call))
            events += [("read", name, "python block") for name in READ.findall(code)]
    return events


def collisions_and_orphans(pages: list[str]) -> list[str]:
    creators: dict[str, set[str]] = defaultdict(set)
    everything = {page: page_events(page) for page in pages}
    for events in everything.values():
        for kind, name, command in events:
            if kind == "create":
                creators[name].add(command)
    problems = []
    for page, events in everything.items():
        made: set[str] = set()
        for kind, name, command in events:
            if kind == "create":
                made.add(name)
            elif name not in made:
                problems.append(f"{page}: `{command}` reads runs/{name}/, which no earlier "
                                "command on the page creates")
            elif len(creators[name]) > 1:
                problems.append(f"{page}: `{command}` reads runs/{name}/, which several "
                                f"documented commands create: {sorted(creators[name])}")
    return problems


def test_every_documented_command_reads_a_run_its_page_created():
    assert collisions_and_orphans(PAGES) == []


def test_the_checker_finds_a_run_of_another_page_and_a_shared_default_name(tmp_path,
                                                                           monkeypatch):
    import tests.test_docs_snippets as snippets

    monkeypatch.setattr(snippets, "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("```bash\nimgcls train\n```\n")
    (tmp_path / "b.md").write_text("```bash\nimgcls train --data path/to/cats-dogs\n"
                                   "imgcls export onnx runs/basic-cnn/best.safetensors\n"
                                   "imgcls eval runs/mine/best.safetensors\n```\n")
    (tmp_path / "c.md").write_text("```python\nfit(data='x', name='mine')\n```\n"
                                   "```bash\nimgcls eval runs/mine/best.safetensors\n"
                                   "imgcls tune --data path/to/cats-dogs --trials 2\n"
                                   "imgcls train --config runs/tune-basic-cnn-cats-dogs/"
                                   "best.toml\n```\n")
    problems = collisions_and_orphans(["a.md", "b.md", "c.md"])
    assert len(problems) == 2, problems
    assert "b.md" in problems[0] and "several documented commands" in problems[0]
    assert "b.md" in problems[1] and "runs/mine/" in problems[1] and "no earlier" in problems[1]


def test_the_examples_write_into_no_run_folder_the_docs_create():
    documented = {name for page in PAGES for kind, name, _ in page_events(page)
                  if kind == "create"}
    assert "basic-cnn" in documented  # the Quickstart's
    for script in sorted((ROOT / "examples").glob("*.py")):
        source = script.read_text()
        names = re.findall(r'"--name",\s*"([^"]+)"', source)
        names += [name for name, _ in created_by_python(source) if "{" not in name]
        assert not set(names) & documented, f"{script.name} writes into {set(names) & documented}"


def test_a_command_line_names_the_run_it_creates():
    def created(line: str) -> str | None:
        return created_by_words(shlex.split(line), {"f.toml": 'model = "resnet-s"\n'})

    assert created("imgcls train --data d") == "basic-cnn"
    assert created("torchrun --nproc-per-node 2 -m imgcls train --data d --name x") == "x"
    assert created("imgcls train --model timm/resnet10t --data d") == "timm-resnet10t"
    assert created("imgcls train --config f.toml --data d") == "resnet-s"
    assert created("imgcls train --resume runs/x") is None
    assert created("imgcls tune --model resnet-s --data a/b --trials 2") == "tune-resnet-s-b"
    assert created("imgcls eval runs/x/best.safetensors") is None
