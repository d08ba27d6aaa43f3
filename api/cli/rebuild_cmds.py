"""`devmesh rebuild graph|vectors`: a derived store written again from the event store (the source of
truth), with the same code as the background repair of owed writes (`ingest.repair`)."""

from __future__ import annotations

from typing import Any

import typer

from api.cli.common import JsonOpt, console, emit, opened, progress

rebuild_app = typer.Typer(
    help="Rebuild a derived store (the graph, the vectors) from the stored events. Safe to run again.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(rebuild_app, name="rebuild")


@rebuild_app.command("graph")
def rebuild_graph_cmd(
    ctx: typer.Context,
    wipe: bool = typer.Option(
        False, "--wipe", help="Remove every node and edge first (runbooks and incidents too: import runbooks again)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Write into the graph every pod placement, EMITS edge and CALLS edge the stored events imply;
    settles the owed graph writes."""
    from ingest.repair import rebuild_graph

    with opened(ctx, vectors=False) as svc, progress(not as_json) as bar:
        task = bar.add_task("rebuild graph", total=None, status="templates")
        report = rebuild_graph(
            svc.pipeline, wipe=wipe, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    emit(report.as_dict(), as_json, _render)


@rebuild_app.command("vectors")
def rebuild_vectors_cmd(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Embed every stored template again and upsert its vector (same ids: nothing is doubled)."""
    from ingest.repair import rebuild_vectors

    with opened(ctx, graph=False) as svc, progress(not as_json) as bar:
        task = bar.add_task("rebuild vectors", total=svc.events.stats()["templates"]["rows"], status="templates")
        report = rebuild_vectors(svc.pipeline, progress=lambda n: bar.update(task, advance=n))
    emit(report.as_dict(), as_json, _render)


def _render(r: dict[str, Any]) -> None:
    console.print(
        f"pods {r['pods']}, templates {r['templates']}, calls {r['calls']}, embedded {r['embedded']},"
        f" owed entries settled {r['entries']} ({r['seconds']:.2f}s); still owed: {r['owed']}"
    )
