"""One table helper for every listing: cells are shown as written, never as rich markup."""

from __future__ import annotations

from imgcls.cli import main
from imgcls.cli.console import print_table

from .helpers import write_class_folders


def test_a_cell_that_looks_like_markup_is_printed_as_written(capsys):
    print_table(("class", "support"), [("[bold]cat[/bold]", 3), ("dog", 12)],
                title="counts", right=("support",))
    out = capsys.readouterr().out
    assert "[bold]cat[/bold]" in out and "counts" in out
    # right-justified: the one-digit count ends where the two-digit one does
    three, twelve = (line for line in out.splitlines() if "cat" in line or "dog" in line)
    assert three.index("3") == twelve.index("12") + 1


def test_data_check_shows_a_class_named_like_markup(tmp_path, capsys):
    classes = {"[red]a": (200, 30, 30), "b": (30, 30, 200)}
    write_class_folders(tmp_path / "data", classes, per_class=3, size=24)
    assert main(["data", "check", "--data", str(tmp_path / "data")]) == 0
    assert "[red]a" in capsys.readouterr().out
