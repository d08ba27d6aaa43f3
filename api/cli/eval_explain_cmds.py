"""`devmesh eval explain cases DIR`: the configured language model's written explanations over case bundles
(answer rate, JSON and citation validity, agreement with the ranking, latency, tokens; `--hostile` for
injected instructions). The harness is `api.measure.eval_explain`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from api.cli.common import JsonOpt, console, emit, err_console, progress, state

explain_app = typer.Typer(
    help="Written explanations of the configured language model (OLLAMA_HOST or DEVMESH_LLM_URL)."
)


def _render(d: dict[str, Any]) -> None:
    t = Table(title=f"written explanations by {d['model']} on {d['dataset']}")
    for col in ("case", "outcome", "agrees", "first words s", "complete s", "prompt/answer tokens", "tok/s"):
        t.add_column(col)
    for r in d["results"]:
        t.add_row(
            r["id"] + (" (hostile)" if r["hostile"] else ""),
            r["outcome"],
            str(r["agrees"]),
            str(r["first_words_s"]),
            str(r["total_s"]),
            f"{r['prompt_tokens']}/{r['answer_tokens']}",
            str(r["tokens_per_s"]),
        )
    console.print(t)
    console.print({k: v for k, v in d.items() if k not in ("results", "errors")})


@explain_app.command("cases")
def eval_explain_cases(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="A folder of case bundles (each subfolder with a case.json)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N bundles (sorted by name)."),
    hostile: bool = typer.Option(
        False, "--hostile", help="Ask each case again with a log line that tells the model to blame another service."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Replay each bundle, explain it with the configured model (streamed), and measure the written answer."""
    from agents.llm_factory import make_llm
    from api.measure.eval_cases import find_cases
    from api.measure.eval_explain import evaluate_explain_cases

    settings = state(ctx).settings
    llm = make_llm(settings)
    if llm is None:
        err_console.print("no language model configured: set OLLAMA_HOST or DEVMESH_LLM_URL (or run `make llm`)")
        raise typer.Exit(2)
    total = min(len(find_cases(directory)), limit or 10**9)
    try:
        with progress(not as_json) as bar:
            task = bar.add_task("explain", total=total, status="")
            result = evaluate_explain_cases(
                directory,
                settings,
                llm,
                limit=limit,
                hostile=hostile,
                on_case=lambda r: bar.update(task, advance=1, status=f"{r['id']}: {r['outcome']}"),
            )
    finally:
        llm.close()
    emit(result, as_json, _render)
    for e in result["errors"]:
        err_console.print(f"[red]error[/red] (case {e['case']}): {e['problem']}")
    if result["errors"]:
        raise typer.Exit(2)
