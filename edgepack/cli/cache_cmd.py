"""`edgepack cache ls` and `edgepack cache prune`: what the cache holds, and freeing it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgepack.cli._app import JsonFlag, app, handle_errors, print_json

out = Console()
cache_app = typer.Typer(help="What edgepack keeps in its cache (references, quants, imatrix, eval, toolchain).",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _table(title: str, entries) -> Table:
    from edgepack.measure.report import human_bytes

    table = Table(title=title)
    for col in ("kind", "entry", "size", "age", "note"):
        table.add_column(col, justify="right" if col in ("size", "age") else "left")
    for e in entries:
        note = "pinned toolchain" if e.pinned else (", ".join(e.referenced_by) and f"used by {', '.join(e.referenced_by)}")
        table.add_row(e.kind, e.name, human_bytes(e.size_bytes), f"{e.age_days:.1f} d", note)
    return table


@cache_app.command("ls")
@handle_errors
def cache_ls(
    bundles: Annotated[Optional[list[Path]], typer.Argument(help="Bundles: show which entries each one uses.")] = None,
    as_json: JsonFlag = False,
):
    """List every cache entry with its kind, size and age."""
    from edgepack.cache import list_cache
    from edgepack.measure.report import human_bytes

    listing = list_cache(bundles or [])
    if as_json:
        print_json(listing)
        return
    out.print(_table(f"{listing.root} ({human_bytes(listing.size_bytes)})", listing.entries))


@cache_app.command("prune")
@handle_errors
def cache_prune(
    bundles: Annotated[Optional[list[Path]], typer.Argument(help="With --unreferenced: the bundles whose entries stay.")] = None,
    older_than: Annotated[Optional[str], typer.Option("--older-than", help="Remove entries not modified for this long, e.g. 30d, 12h, 2w.")] = None,
    max_size: Annotated[Optional[str], typer.Option("--max-size", help="Then remove the oldest entries until the cache is at most this, e.g. 5GB.")] = None,
    unreferenced: Annotated[bool, typer.Option("--unreferenced", help="Remove every entry none of BUNDLES uses.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    as_json: JsonFlag = False,
):
    """Free space: remove old entries, the oldest beyond a size, or what no given bundle uses (never the pinned toolchain)."""
    from edgepack.cache import prune_cache
    from edgepack.measure.report import human_bytes

    result = prune_cache(older_than=older_than, max_size=max_size, unreferenced=unreferenced,
                         bundles=bundles or [], dry_run=dry_run)
    if as_json:
        print_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    out.print(_table(f"{verb} {len(result.removed)} entries, {human_bytes(result.freed_bytes)}", result.removed))
