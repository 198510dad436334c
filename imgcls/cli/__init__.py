"""The ``imgcls`` command line: one module per command; each parses, calls the library, prints."""

from __future__ import annotations

import errno
import signal
import sys
import threading
import traceback
import warnings
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ..errors import ImgclsError
from ..version import __version__
from . import augment as augment_command
from . import data as data_command
from . import eval as eval_command
from . import explain, export, infer, inspect, listing, train
from . import tune as tune_command
from .console import err_console, print_warning, printable

if TYPE_CHECKING:
    # Annotations only: typer 0.2x ships its own copy of click and does not install click.
    import click

# Words other tools use for imgcls's commands (Ultralytics and Keras users type predict).
OTHER_NAMES = {"predict": "infer", "classify": "infer", "fit": "train", "evaluate": "eval",
               "val": "eval", "validate": "eval", "test": "eval"}


class Commands(TyperGroup):
    """imgcls's command group: whole summaries in --help, and a pointer for other tools' words."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, command.get_short_help_str(limit=1_000))
                for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:  # each summary's first sentence, wrapped: never cut off with "..."
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else None
        if name in OTHER_NAMES and name not in self.commands:
            ctx.fail(f"No such command {name!r}. imgcls calls it `imgcls {OTHER_NAMES[name]}` "
                     f"(see imgcls {OTHER_NAMES[name]} --help).")
        return super().resolve_command(ctx, args)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"imgcls {__version__}")
        raise typer.Exit()


def build_app(args: list[str] | None = None, with_plugins: bool = True) -> typer.Typer:
    """The typer app; plugin commands are added unless ``args`` name a built-in command
    or ask only for the version.

    Loading plugins imports every model plugin (and torch with them): ``imgcls
    infer`` on an .onnx file starts in a fraction of a second without them. The command
    listing loads only the installed plugins (no built-in adds a command), so ``imgcls
    --help`` does not import torch either.
    """
    app = typer.Typer(name="imgcls", cls=Commands, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, rich_markup_mode=None,
                      help="Train image classifiers, export them to ONNX, run batch inference.")

    @app.callback()
    def root(
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                     help="Show the version and exit."),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    ) -> None:
        """imgcls: train on a folder, export a self-describing ONNX model, infer in batches."""

    app.command("train")(train.train)
    app.command("tune")(tune_command.tune)
    app.command("eval")(eval_command.evaluate)
    app.command("infer")(infer.infer)
    app.command("explain")(explain.explain)
    app.command("inspect")(inspect.inspect)
    app.command("models")(listing.models)
    app.command("plugins")(listing.plugins)
    export_app = typer.Typer(help="Export a checkpoint for deployment.", no_args_is_help=True)
    export_app.command("onnx")(export.onnx)
    app.add_typer(export_app, name="export")
    data_app = typer.Typer(help="Check and clean data sets.", no_args_is_help=True)
    data_app.command("check")(data_command.check)
    data_app.command("audit")(data_command.audit)
    data_app.command("prepare")(data_command.prepare)
    app.add_typer(data_app, name="data")
    augment_app = typer.Typer(help="See what augmentations do.", no_args_is_help=True)
    augment_app.command("preview")(augment_command.preview)
    app.add_typer(augment_app, name="augment")
    if with_plugins and _lists_or_runs_plugin_commands(args, app):
        _plugin_commands(app)
    return app


def _lists_or_runs_plugin_commands(args: list[str] | None, app: typer.Typer) -> bool:
    if args is None:
        return True
    command = _command_name(args)
    if command is None:  # the listing (--help, no arguments), unless only --version is asked
        return "--version" not in args or "--help" in args
    return command not in _builtin_names(app)


def _command_name(args: list[str]) -> str | None:
    # The root options (--version, --debug, --help) take no values, so the first
    # other word is the command.
    return next((arg for arg in args if not arg.startswith("-")), None)


def _builtin_names(app: typer.Typer) -> set[str]:
    return ({command.name for command in app.registered_commands}
            | {group.name for group in app.registered_groups})


def _plugin_commands(app: typer.Typer) -> dict[str, list[str]]:
    """Add every plugin's commands to ``app``; returns the names each plugin added."""
    from ..plugins import command_hook_impls, plugin_name, report_failure

    taken = {name: "imgcls" for name in _builtin_names(app)}
    added: dict[str, list[str]] = {}
    for impl in command_hook_impls():
        owner = plugin_name(impl.plugin)
        before = (len(app.registered_commands), len(app.registered_groups))
        try:
            impl.function(cli=app)
        except Exception as exc:  # a plugin's broken command must not break the CLI
            del app.registered_commands[before[0]:], app.registered_groups[before[1]:]
            report_failure(owner, exc, "register commands")
            continue
        added[owner] = _refuse_clashes(app, before, owner, taken)
        taken.update(dict.fromkeys(added[owner], owner))
    return added


def plugin_commands() -> dict[str, list[str]]:
    """The commands each plugin adds; refused ones are in ``imgcls.plugins.skipped``."""
    return _plugin_commands(build_app(["--help"], with_plugins=False))


def _info_name(info: object) -> str:
    # typer names a command after its function when the plugin gave no name.
    name = getattr(info, "name", None)
    if name is None and getattr(info, "typer_instance", None) is not None:
        name = info.typer_instance.info.name  # type: ignore[attr-defined]
    if name is None and getattr(info, "callback", None) is not None:
        name = info.callback.__name__.lower().replace("_", "-")  # type: ignore[attr-defined]
    return str(name)


def _refuse_clashes(app: typer.Typer, before: tuple[int, int], owner: str,
                    taken: dict[str, str]) -> list[str]:
    # A built-in command always runs under its name (plugins are not even loaded
    # then), so a plugin's command of that name would only confuse --help; between
    # two plugins the first-loaded one keeps the name.
    from ..plugins import report_skip

    kept: list[str] = []
    for infos, start in ((app.registered_commands, before[0]), (app.registered_groups, before[1])):
        keep = []
        for info in infos[start:]:
            name = _info_name(info)
            if name not in taken:
                keep.append(info)
                kept.append(name)
                continue
            why = ("it is a built-in imgcls command" if taken[name] == "imgcls"
                   else f"plugin {taken[name]!r} added it first")
            report_skip(owner, f"command:{name}", f"The command {name!r}", why,
                        "Rename the command in the plugin.")
        infos[start:] = keep
    return kept


def print_error(exc: ImgclsError) -> None:
    """Print a library error as one line and its hint; never raises."""
    message, hint = str(getattr(exc, "message", exc)), getattr(exc, "hint", None)
    message = printable(message)  # a file name that is not UTF-8 must not crash the printer
    try:
        err_console.print(f"[bold red]Error:[/bold red] {escape(message)}", highlight=False)
        if hint:
            err_console.print(f"Hint: {escape(str(hint))}", highlight=False)
    except Exception:  # the error printer is the last line of defence: plain text then
        print(f"Error: {message}", file=sys.stderr)
        if hint:
            print(f"Hint: {hint}", file=sys.stderr)


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(exc: OSError) -> ImgclsError:
    """ENOSPC/EDQUOT from any write as one clear error naming the file."""
    where = f" ({exc.filename})" if exc.filename else ""
    return ImgclsError(f"Could not write: the disk is full (or over quota){where}.",
                       "Free some space, or write elsewhere with --out-dir / --output.")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    # Python's own form (file.py:70: PluginWarning: ...) means nothing to a user.
    print_warning(" ".join(str(message).splitlines()))


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send before they kill) arrived: stop as Ctrl-C stops."""


TERMINATED = 128 + signal.SIGTERM  # 143: the status a shell shows for a SIGTERM death


_signalled: list[int] = []  # SIGTERM arrived in this main(): the exit status is 143


def _terminate(signum: int, frame: object) -> None:
    # Raised in the main thread, like KeyboardInterrupt: every finally and except
    # BaseException runs, so temporary files go and workers are shut down.
    _signalled.append(signum)
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; library errors become one-line messages and exit code 1.

    SIGTERM behaves like Ctrl-C (a resumable state, no temporary files) but exits 143.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    handle = threading.current_thread() is threading.main_thread()
    _signalled.clear()
    previous = signal.signal(signal.SIGTERM, _terminate) if handle else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(args)
    except Terminated:  # arrived outside _run's own handling (while printing)
        return TERMINATED
    finally:
        if handle:  # None: a handler set outside Python; the default is the closest
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _run(args: list[str]) -> int:
    debug = "--debug" in args
    try:
        build_app(args)(args=args, prog_name="imgcls")
    except SystemExit as exc:  # typer exits for --help, usage errors and success alike
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        # typer turns Ctrl-C into exit 130 (train after printing the resume command).
        if code == 130 and _signalled:
            err_console.print("Terminated (SIGTERM).")
            return TERMINATED
        return code
    except ImgclsError as exc:
        if debug:
            traceback.print_exc()
        print_error(exc)
        return 1
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        if debug:
            traceback.print_exc()
        print_error(disk_full_error(exc))
        return 1
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        err_console.print("Terminated (SIGTERM)." if terminated else "Aborted.")
        return TERMINATED if terminated else 130
    return 0

