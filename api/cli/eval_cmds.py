"""`devmesh eval templates|rca nezha|rca cases|detect nezha|detect cases|make-cases nezha`: accuracy on
labelled data sets and case bundles (one JSON object with --json).

The harnesses are in `api.measure`; the scoring they apply in `detect.scoring` and `ingest.templates.scoring`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from api.cli.common import JsonOpt, console, emit, err_console, progress, state
from api.cli.eval_explain_cmds import explain_app
from api.measure.modalities import MODALITIES
from core.errors import InvalidInput
from core.timeutil import NS, parse_duration
from ingest.templates.scoring import DEFAULT_BATCH

# each evaluation imports its harness (and the engines) in its body: `devmesh` starts without them

eval_app = typer.Typer(help="Accuracy evaluations on labelled data sets; JSON results with --json.")
rca_app = typer.Typer(help="Root-cause ranking accuracy on labelled fault-injection data sets.")
detect_app = typer.Typer(help="Scheduled detection replayed over a labelled data set.")
eval_app.add_typer(rca_app, name="rca")
make_app = typer.Typer(help="Case bundles (CASE-BUNDLES.md) from labelled data sets, to score with `eval rca cases`.")
eval_app.add_typer(detect_app, name="detect")
eval_app.add_typer(make_app, name="make-cases")
eval_app.add_typer(explain_app, name="explain")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


def _print(d: dict[str, Any]) -> None:
    console.print_json(data=d)


@eval_app.command("templates")
def eval_templates(
    directory: Path = typer.Argument(..., help="Loghub-layout folder: <Sys>/<Sys>_2k.log_structured_corrected.csv"),
    system: list[str] | None = typer.Option(None, "--system", help="Only these systems (repeat)."),
    hold_out: list[str] | None = typer.Option(
        None, "--hold-out", help="Systems not tuned on (repeat): marked, and averaged apart."
    ),
    batch_size: int = typer.Option(DEFAULT_BATCH, "--batch-size", help="Lines a batch (1 = one at a time)."),
    stream: bool = typer.Option(False, "--stream", help="Also mine each system again in small batches (streaming)."),
    stream_batch_size: int = typer.Option(1, "--stream-batch-size", help="Lines a batch with --stream."),
    as_json: bool = JsonOpt,
) -> None:
    """Grouping accuracy of the template miner per system (Loghub definition) and the average."""
    from ingest.templates.scoring import evaluate_templates

    result = evaluate_templates(
        directory,
        systems=system or None,
        batch_size=batch_size,
        stream_batch_size=stream_batch_size if stream else None,
        hold_out=hold_out or (),
    )
    emit(result, as_json, _print)


def _render_rca(d: dict[str, Any]) -> None:
    t = Table(title=f"root-cause ranking on {d['dataset']} ({', '.join(d['modalities'])})")
    for col in ("fault", "type", "truth", "rank", "top 3", "s"):
        t.add_column(col)
    for r in d["results"]:
        t.add_row(
            r["fault"],
            r["fault_type"],
            r["truth"],
            str(r["rank"] or "-"),
            ", ".join(r["ranking"][:3]),
            f"{r['seconds']:.2f}",
        )
    console.print(t)
    console.print(
        f"AC@1 {d['ac1']:.3f}  AC@3 {d['ac3']:.3f}  AC@5 {d['ac5']:.3f}  over {d['cases']} faults; "
        f"median {d['median_case_s']:.2f} s a case"
    )
    for kind, s in d["by_fault_type"].items():
        console.print(f"  {kind}: AC@1 {s['ac1']:.3f}  AC@3 {s['ac3']:.3f}  AC@5 {s['ac5']:.3f}  ({s['cases']})")


@rca_app.command("nezha")
def eval_rca_nezha(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Nezha-layout folder (date folders with log/, trace/, metric/)."),
    no_logs: bool = typer.Option(False, "--no-logs", help="Rank without logs."),
    no_traces: bool = typer.Option(False, "--no-traces", help="Rank without traces."),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Rank without metrics."),
    home: Path | None = typer.Option(
        None,
        "--eval-home",
        help="Import into this (empty) folder and keep it; default a temporary folder. Not DEVMESH_HOME.",
    ),
    reuse: bool = typer.Option(False, "--reuse", help="Reuse --eval-home if this evaluation imported it before."),
    hindsight: bool = typer.Option(
        False,
        "--hindsight",
        help="History from both sides of each fault (a post-mortem). Default: only from before it, as live.",
    ),
    via_agents: bool = typer.Option(
        False, "--via-agents", help="Also explain each fault with the agent team and compare its ranking."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Import DIR, rank each labelled fault from its start time alone (as POST /explain would), score."""
    from api.measure.eval_rca import evaluate_rca_nezha
    from api.wiring import open_services
    from detect.rank.windows import IncidentOptions
    from ingest.nezha import load_faults, plan

    settings = state(ctx).settings
    mods = [m for m, off in (("logs", no_logs), ("traces", no_traces), ("metrics", no_metrics)) if not off]
    if not mods:
        raise typer.BadParameter("leave at least one of logs, traces, metrics")
    p = plan(directory)
    with progress(not as_json) as bar:
        imp = bar.add_task("import", total=len(p.files), status="")
        cases = bar.add_task("rank", total=len(load_faults(p)), status="")
        result = evaluate_rca_nezha(
            directory,
            home=home,
            open_fn=lambda h: open_services(
                settings.model_copy(update={"home": h, "embedder": "minilm" if via_agents else "none"}),
                graph=via_agents,
                vectors=via_agents,
            ),
            options=IncidentOptions(past_only=not hindsight),
            via_agents=via_agents,
            modalities=mods,
            reuse=reuse,
            on_import=lambda name: bar.update(imp, advance=1, status=name),
            on_case=lambda r: bar.update(cases, advance=1, status=f"{r['fault']} rank {r['rank'] or '-'}"),
        )
    emit(result, as_json, _render_rca)


@detect_app.command("nezha")
def eval_detect_nezha(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Nezha-layout folder (date folders with a fault list)."),
    home: Path | None = typer.Option(None, help="Home to import into (default: a new temporary one)."),
    reuse: bool = typer.Option(False, help="Reuse the data already imported into --home."),
    explain: bool = typer.Option(False, help="Run the whole agent team for each incident (slower)."),
    as_json: bool = JsonOpt,
) -> None:
    """Replay detection once a minute over the data; faults detected within 3 minutes, top-1, false incidents."""
    from api.measure.eval_detect import evaluate_detect_nezha
    from api.wiring import open_services

    with tempfile.TemporaryDirectory(prefix="devmesh-eval-") as tmp, progress(not as_json) as bar:
        settings = state(ctx).settings.model_copy(update={"home": home or Path(tmp)})
        task = bar.add_task("detect", total=None, status="")
        result = evaluate_detect_nezha(
            directory,
            settings,
            open_fn=open_services,
            reuse=reuse,
            explain=explain,
            on_run=lambda n, total: bar.update(task, completed=n, total=total),
        )
    emit(result, as_json, _print)


def _duration_ns(text: str, option: str) -> int:
    try:
        return int(parse_duration(text).total_seconds() * NS)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=option) from None


@make_app.command("nezha")
def make_cases_nezha(
    ctx: typer.Context,
    src: Path = typer.Argument(..., help="Nezha-layout folder (date folders with a fault list)."),
    out: Path = typer.Argument(..., help="Folder to write the bundles into (new, or empty): one per fault."),
    system: str = typer.Option("", "--system", help="The system's name in case.json (default: from SRC)."),
    id_prefix: str = typer.Option("", "--id-prefix", help="Case ids are <prefix>-<date>-<HHMM> (default: system)."),
    asked_after: str = typer.Option("3m", "--asked-after", help="Each case is asked this long after its fault."),
    before: str = typer.Option("60m", "--before", help="Telemetry from this long before the question."),
    after: str = typer.Option("10m", "--after", help="Telemetry up to this long after the question."),
    modalities: str = typer.Option(",".join(MODALITIES), "--modalities", help="Kinds of telemetry to keep."),
    as_json: bool = JsonOpt,
) -> None:
    """Import SRC once, then export each labelled fault as a case bundle (truth.json from the label)."""
    from api.measure.nezha_cases import CaseSpec, make_nezha_cases
    from ingest.nezha import load_faults, plan

    name = system or src.resolve().name.removeprefix("nezha-")
    spec = CaseSpec(
        system=name,
        id_prefix=id_prefix or name,
        asked_after_ns=_duration_ns(asked_after, "--asked-after"),
        before_ns=_duration_ns(before, "--before"),
        after_ns=_duration_ns(after, "--after"),
        modalities=tuple(m.strip() for m in modalities.split(",") if m.strip()),
    )
    with progress(not as_json) as bar:
        imp = bar.add_task("import", total=len(plan(src).files), status="")
        cases = bar.add_task("export", total=len(load_faults(plan(src))), status="")
        result = make_nezha_cases(
            src,
            out,
            spec,
            state(ctx).settings,
            on_import=lambda name: bar.update(imp, advance=1, status=name),
            on_case=lambda r: bar.update(cases, advance=1, status=r["id"]),
        )
    emit(result, as_json, _render_made)


def _render_made(d: dict[str, Any]) -> None:
    t = Table(title=f"{len(d['cases'])} case bundles of {d['system']} in {d['out']} ({', '.join(d['modalities'])})")
    for col in ("case", "asked at", "kind", "rows", "masked"):
        t.add_column(col)
    for c in d["cases"]:
        rows = ", ".join(f"{k} {v}" for k, v in c["rows"].items())
        t.add_row(c["id"], c["asked_at"], c["kind"], rows, str(c["masked"]))
    console.print(t)


def _case_status(r: dict[str, Any]) -> str:
    return f"{r['id']}: {r['error']}" if "error" in r else f"{r['id']} rank {r.get('rank') or '-'}"


def _exit_on_errors(d: dict[str, Any]) -> None:
    """Exit 2 (after the results) when some bundles could not be scored, naming each and its problem."""
    for e in d["errors"]:
        err_console.print(f"[red]error[/red] (case {e['case']}): {e['problem']}")
    if d["errors"]:
        raise typer.Exit(2)


@rca_app.command("cases")
def eval_rca_cases(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="A folder of case bundles (each subfolder with a case.json)."),
    hindsight: bool = typer.Option(False, "--hindsight", help="Ingest all of each bundle, not only up to asked_at."),
    as_json: bool = JsonOpt,
) -> None:
    """Replay each bundle into a fresh home, explain it as POST /explain would (evidence-only), score the
    ranking against truth.json: AC@1/3/5, Avg@5, fault-kind accuracy, per system and kind. Exit 2 when some
    bundles could not be scored (listed under errors)."""
    from api.measure.eval_cases import evaluate_rca_cases, find_cases
    from retrieval.embedder_factory import make_embedder

    settings = state(ctx).settings
    total = len(find_cases(directory))
    with tempfile.TemporaryDirectory(prefix="devmesh-eval-embedder-") as tmp, progress(not as_json) as bar:
        embedder = make_embedder(settings, Path(tmp))
        note = "none" if embedder is None else f"{settings.embedder}: one model and text cache for all cases"
        task = bar.add_task("explain", total=total, status="")
        result = evaluate_rca_cases(
            directory,
            settings,
            hindsight=hindsight,
            embedder=embedder,
            embedder_note=note,
            on_case=lambda r: bar.update(task, advance=1, status=_case_status(r)),
        )
    emit(result, as_json, _render_rca_cases)
    _exit_on_errors(result)


def _render_rca_cases(d: dict[str, Any]) -> None:
    t = Table(title=f"root causes of the cases in {d['dataset']} ({d['mode']})")
    for col in ("case", "system", "kind", "truth", "rank", "top 3", "kind at 1", "s"):
        t.add_column(col)
    for r in d["results"]:
        top = ", ".join(f"{c['service']} {c['confidence']:.2f}" for c in r["ranking"][:3])
        kind = "" if not r["ranking"] else r["ranking"][0]["fault_kind"]
        mark = {True: " (right)", False: " (wrong)", None: ""}[r["kind_right"]]
        truth = " on ".join(n for n in (r["truth"]["service"], r["truth"]["host"]) if n)
        t.add_row(
            r["id"], r["system"], r["kind"], truth, str(r["rank"] or "-"), top, kind + mark, f"{r['seconds']:.2f}"
        )
    console.print(t)
    ka = "-" if d["kind_accuracy"] is None else f"{d['kind_accuracy']:.3f}"
    console.print(
        f"AC@1 {d['ac1']:.3f}  AC@3 {d['ac3']:.3f}  AC@5 {d['ac5']:.3f}  Avg@5 {d['avg5']:.3f}  kind {ka}  over "
        f"{d['cases']} cases; median {d['median_case_s'] or 0:.2f} s an explanation; embedder {d['embedder']}"
    )
    for title, groups in (("system", d["by_system"]), ("kind", d["by_kind"])):
        for name, s in groups.items():
            console.print(
                f"  {title} {name}: AC@1 {s['ac1']:.3f}  AC@3 {s['ac3']:.3f}  Avg@5 {s['avg5']:.3f}  ({s['cases']})"
            )


@detect_app.command("cases")
def eval_detect_cases(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="A folder of case bundles (each subfolder with a case.json)."),
    as_json: bool = JsonOpt,
) -> None:
    """Replay scheduled detection once a minute over each bundle's telemetry (each in a fresh home): detected
    within 3 minutes of the fault, the root cause on the incident, false incidents before it."""
    from api.measure.eval_cases import evaluate_detect_cases, find_cases

    settings = state(ctx).settings
    total = len(find_cases(directory))
    with progress(not as_json) as bar:
        task = bar.add_task("detect", total=total, status="")
        result = evaluate_detect_cases(
            directory, settings, on_case=lambda r: bar.update(task, advance=1, status=r["id"])
        )
    emit(result, as_json, _render_detect_cases)
    _exit_on_errors(result)


def _render_detect_cases(d: dict[str, Any]) -> None:
    t = Table(title=f"scheduled detection over the cases in {d['dataset']}")
    for col in ("case", "kind", "truth", "detected", "delay s", "root cause", "right", "false before"):
        t.add_column(col)
    for r in d["results"]:
        delay = "-" if r["delay_s"] is None else f"{r['delay_s']:.0f}"
        t.add_row(
            r["id"],
            r["kind"],
            " on ".join(n for n in (r["truth"]["service"], r["truth"]["host"]) if n),
            "yes" if r["detected"] else "no",
            delay,
            r["root_cause"] or "-",
            "yes" if r["right"] else "no",
            str(r["false_incidents"]),
        )
    console.print(t)
    fph = "-" if d["false_per_hour"] is None else f"{d['false_per_hour']:.2f}"
    console.print(
        f"detected {d['detected']:.3f}  right root {d['right_root']:.3f}  false incidents {d['false_incidents']} "
        f"({fph} an hour) over {d['cases']} cases"
    )
