"""``crm-bridge sync | daemon | status | state | dlq``: running pairs and looking after their state."""

from __future__ import annotations

import dataclasses
import json
import signal
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from crm_bridge.cli._app import (
    ConfigOption,
    SecretsFileOption,
    app,
    err_console,
    guarded,
    load,
    out,
    parse_since,
)
from crm_bridge.config import DaemonSettings, SyncSettings, env_var_for
from crm_bridge.dead_letter_fixes import fix_for
from crm_bridge.errors import CrmBridgeError, RecordRejectedError
from crm_bridge.ops.workers_status import feature_runs_table, workers_table
from crm_bridge.session import Session
from crm_bridge.store import DeadLetter, DeadLetterStatus, Store
from crm_bridge.store.locking import pair_lock_name
from crm_bridge.sync.actions import Create, FlagDeleted, Reject, Remove, Update
from crm_bridge.sync.daemon import Daemon
from crm_bridge.sync.push import PairFeeds
from crm_bridge.sync.runner import CycleReport, SyncRunner

PairOption = Annotated[
    str | None, typer.Option("--pair", "-p", help="Only this pair (default: every pair).")
]

LAST_RUN_FAILED_EXIT = 10
"""``crm-bridge status``'s exit code when a shown pair's last run ended ``failed`` or ``aborted``.

Why a code of its own: ``status`` reads the runs table, where the error class that stopped the run
is no longer known, and 1 already means "unexpected error"; a health check needs a code that says
"the bridge answers, but a pair's last run did not succeed" (see docs/errors.md).
"""
UNSUCCESSFUL_RUNS = frozenset({"failed", "aborted"})


HANDLED_COUNTS = (
    "created",
    "matched",
    "updated",
    "deleted",
    "deleted_flagged",
    "merged",
    "linked",
    "converted",
    "target_moved",
    "dead_lettered",
)
"""The counts of records a cycle acted on (wrote, linked or dead-lettered); echoes are not."""
DEAD_LETTER_EXIT = RecordRejectedError.exit_code
"""``sync``'s exit code when a run dead-lettered more than ``sync.max_dead_letter_ratio``."""


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetterShare:
    """How much of one run was dead-lettered, and whether that is over the configured limit."""

    dead: int
    handled: int
    limit: float
    floor: int

    @property
    def ratio(self) -> float:
        """Dead letters over the records the run acted on (0 when it acted on none)."""
        return self.dead / self.handled if self.handled else 0.0

    @property
    def over(self) -> bool:
        """More than ``floor`` dead letters and a share above ``limit``."""
        return self.dead > self.floor and self.ratio > self.limit


def dead_letter_share(report: CycleReport, settings: SyncSettings) -> DeadLetterShare:
    """The run's dead-letter share against ``[sync] max_dead_letter_ratio`` / ``dead_letter_floor``.

    Why the floor: a quiet incremental cycle that handled 3 records and dead-lettered 1 is a dead
    letter to look at, not a failed run; a first sync that dead-letters thousands is.
    """
    handled = sum(report.counts.get(k, 0) for k in HANDLED_COUNTS)
    return DeadLetterShare(
        dead=report.counts.get("dead_lettered", 0),
        handled=handled,
        limit=settings.max_dead_letter_ratio,
        floor=settings.dead_letter_floor,
    )


def _run_dead_letters(store: Store, report: CycleReport) -> list[DeadLetter]:
    """The open dead letters this run added or touched (last seen at or after its start)."""
    with store.transaction(readonly=True) as tx:
        runs = [r for r in tx.last_runs(report.pair, limit=5) if r.id == report.run_id]
        letters = tx.dead_letters(pair=report.pair, status="open", limit=1_000_000)
    if not runs:
        return letters
    started = runs[0].started_at
    return [dl for dl in letters if dl.last_seen >= started]


def _dead_letter_warning(
    share: DeadLetterShare, letters: Sequence[DeadLetter], pair: str
) -> list[str]:
    """Lines for stderr: the share, the top codes with their fixes, and where to look next."""
    lines = [
        f"pair {pair}: {share.dead} of {share.handled} records dead-lettered "
        f"({share.ratio:.0%}, over sync.max_dead_letter_ratio = {share.limit:.0%}; "
        f"env {env_var_for('sync', 'max_dead_letter_ratio')})"
    ]
    by_code = Counter(dl.error_code or "(no code)" for dl in letters)
    for code, count in by_code.most_common(5):
        lines.append(f"  {code}: {count} -> {fix_for(code)}")
    if len(by_code) > 5:
        lines.append(f"  ... {len(by_code) - 5} more codes")
    lines.append(f"  see: crm-bridge dlq list --summary --pair {pair}")
    return lines


def _summary(report: CycleReport) -> str:
    keys = (
        "created",
        "matched",
        "updated",
        "deleted",
        "deleted_flagged",
        "merged",
        "linked",
        "dead_lettered",
        "conflicts",
        "echoes_skipped",
        "replayed",
    )
    parts = [f"{k}={report.counts[k]}" for k in keys if report.counts.get(k)]
    calls = " ".join(f"{name}:{n}" for name, n in report.calls.items())
    return f"pair={report.pair} {' '.join(parts) or 'no changes'} calls[{calls}]"


def _print_plan(report: CycleReport) -> None:
    for plan in report.plans:
        out.print(f"pair {plan.pair} / {plan.obj}:", markup=False)
        for action in plan.actions:
            if isinstance(action, Create):
                out.print(
                    f"  create on {action.target} from {action.source_id}: {dict(action.fields)}",
                    markup=False,
                )
            elif isinstance(action, Update):
                out.print(
                    f"  update {action.target} {action.target_id}: {dict(action.fields)}",
                    markup=False,
                )
            elif isinstance(action, Remove):
                out.print(
                    f"  {action.mode}-delete {action.target} {action.target_id}", markup=False
                )
            elif isinstance(action, FlagDeleted):
                out.print(f"  flag deleted {action.deleted_side} {action.deleted_id}", markup=False)
            elif isinstance(action, Reject):
                out.print(f"  dead-letter {action.source_id}: {action.reason}", markup=False)
        for d in plan.decisions:
            out.print(
                f"  conflict {d.field}: crm={d.crm_value!r} map={d.map_value!r} -> {d.winner} ({d.rule})",
                markup=False,
            )
        out.print(
            f"  ({plan.echoes} echoes skipped, {plan.already_applied} already applied)",
            markup=False,
        )


MAX_CATCH_UP_CYCLES = 100_000
"""A bound on ``sync --until-caught-up`` (10^9 records at the default cap): never an endless loop."""


@app.command("sync")
def sync(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    pair: PairOption = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="Print what would change; write nothing.")
    ] = False,
    allow_deletes: Annotated[
        bool, typer.Option("--allow-deletes", help="Override the max_delete_ratio guard once.")
    ] = False,
    max_dead_letter_ratio: Annotated[
        float | None,
        typer.Option(
            "--max-dead-letter-ratio",
            min=0.0,
            max=1.0,
            help="Exit 5 when a run dead-letters more than this share of the records it handled "
            "(default: sync.max_dead_letter_ratio, 0.10).",
            show_default=False,
        ),
    ] = None,
    lock_wait: Annotated[
        float,
        typer.Option(
            "--lock-wait",
            min=0.0,
            help="Wait up to this many seconds for a pair's writer lock (held by a daemon or "
            "worker running that pair) instead of exiting 9 at once.",
        ),
    ] = 0.0,
    until_caught_up: Annotated[
        bool,
        typer.Option(
            "--until-caught-up",
            help="Run cycles until no read is capped by max_records_per_cycle (an initial load "
            "or a backfill in one command), printing one line per cycle.",
        ),
    ] = False,
) -> None:
    """Run one sync cycle for each pair (or --pair NAME) and exit.

    With --until-caught-up, each pair runs cycle after cycle until it has read everything: why
    not a loop of `crm-bridge sync` in a script -- each process would start its own Salesforce
    Bulk query job for the rest of a large read, while one process reuses the first job's
    snapshot for every cycle of the load.

    A run that dead-letters more than sync.max_dead_letter_ratio of what it handled (and more
    than sync.dead_letter_floor records) prints its top codes with their fixes and exits 5.

    Example: crm-bridge sync --config config.toml --pair main --plan
    """
    over: list[str] = []
    with guarded():
        loaded = load(config, secrets_file)
        limits = loaded.settings.sync
        if max_dead_letter_ratio is not None:
            limits = limits.model_copy(update={"max_dead_letter_ratio": max_dead_letter_ratio})
        with Session(loaded) as session:
            for name in session.pair_names(pair):
                runner = session.runner(name)
                if plan:
                    _print_plan(runner.run_cycle(plan_only=True))
                    continue
                with session.store.writer_lock(pair_lock_name(name), wait=lock_wait):
                    report = runner.run_cycle(allow_deletes=allow_deletes)
                    whole = report  # what the dead-letter check judges: every cycle of the run
                    for _ in range(MAX_CATCH_UP_CYCLES if until_caught_up else 0):
                        if not report.counts["capped_reads"]:
                            break
                        out.print(_summary(report), markup=False)
                        report = runner.run_cycle(allow_deletes=allow_deletes)
                        whole = replace(whole, counts=whole.counts + report.counts)
                share = dead_letter_share(whole, limits)
                line = _summary(report)
                if share.dead:
                    line += f" dead_letter_share={share.ratio:.1%}"
                out.print(line, markup=False)
                if share.over:
                    over.append(name)
                    for text in _dead_letter_warning(
                        share, _run_dead_letters(session.store, whole), name
                    ):
                        err_console.print(text, markup=False)
    if over:
        err_console.print(
            f"error: pair {', '.join(over)} dead-lettered more than "
            f"{limits.max_dead_letter_ratio:.0%} of its records (exit {DEAD_LETTER_EXIT})",
            markup=False,
        )
        raise typer.Exit(DEAD_LETTER_EXIT)


@app.command("daemon")
def daemon(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    pair: PairOption = None,
    cycles: Annotated[
        int | None,
        typer.Option("--cycles", help="Stop after N cycles (default: run until SIGTERM)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="CRM_BRIDGE_METRICS_PORT",
            help="Serve Prometheus /metrics and /healthz on this port (0: any free port).",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            envvar="CRM_BRIDGE_METRICS_HOST",
            help="Address to serve metrics on (0.0.0.0 in a container).",
        ),
    ] = "127.0.0.1",
    unhealthy_after: Annotated[
        float,
        typer.Option(
            "--unhealthy-after",
            min=1.0,
            help="/healthz answers 503 once a pair has not succeeded for this many intervals.",
        ),
    ] = 3.0,
) -> None:
    """Run sync cycles every daemon.interval_seconds until SIGTERM (finishes the batch in flight).

    Exits non-zero, with the code `sync` would have, when a pair's last run failed.
    With --metrics-port, serves Prometheus metrics and a health check (docs/operations.md).

    Example: crm-bridge daemon --config config.toml --metrics-port 9464
    """
    from crm_bridge.ops.service import serve_ops

    with guarded():
        loaded = load(config, secrets_file)
        with Session(loaded) as session:
            runners = [session.runner(n) for n in session.pair_names(pair)]
            feeds = _push_feeds(loaded.settings.daemon, runners, lambda: loop)
            # A pair polled only for safety between hinted cycles may be quiet that long.
            slowest = max(
                [loaded.settings.daemon.interval_seconds]
                + [loaded.settings.daemon.safety_poll_seconds for f in feeds if f.complete]
            )
            ops = serve_ops(
                session,
                [r.name for r in runners],
                interval=slowest,
                port=metrics_port,
                host=metrics_host,
                unhealthy_after=unhealthy_after,
            )

            outcomes = _PairOutcomes(r.name for r in runners)

            def on_cycle(n: int, report: CycleReport, seconds: float) -> None:
                outcomes.succeeded(report.pair)
                out.print(f"cycle {n} {_summary(report)} took={seconds:.1f}s", markup=False)

            def on_error(name: str, exc: CrmBridgeError) -> None:
                outcomes.failed(name, exc)
                err_console.print(f"pair {name}: {exc}", markup=False)

            def on_job(name: str, summary: str) -> None:
                out.print(f"  {name}: {summary}", markup=False)

            loop = Daemon(
                feeds=feeds,
                safety_poll=loaded.settings.daemon.safety_poll_seconds,
                jobs=[(name, outcomes.job(run)) for name, run in _feature_jobs(session)],
                on_job=on_job,
                runners=runners,
                store=session.store,
                interval=loaded.settings.daemon.interval_seconds,
                on_cycle=on_cycle,
                on_error=on_error,
                max_cycles=cycles,
            )
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: loop.stop())
            with ops as served:
                if served.server is not None:
                    out.print(f"serving {served.url}/metrics and /healthz", markup=False)
                stats = loop.run()
            out.print(
                f"daemon stopped after {stats.cycles} cycles ({stats.failures} failed)",
                markup=False,
            )
        if outcomes.failing:
            code = list(outcomes.failing.values())[-1]
            names = ", ".join(outcomes.failing)
            err_console.print(
                f"error: the last run of pair {names} did not succeed (exit {code})", markup=False
            )
            raise typer.Exit(code)


def _push_feeds(
    settings: DaemonSettings, runners: Sequence[SyncRunner], daemon: Callable[[], Daemon]
) -> list[PairFeeds]:
    """The pairs' push channels when ``daemon.push`` is on; their waits end on a stop signal."""
    if not settings.push:
        return []

    def pause(seconds: float) -> None:
        daemon().wait(seconds)

    opened = (
        PairFeeds.open(
            runner,
            debounce=settings.push_debounce_seconds,
            max_delay=settings.push_max_delay_seconds,
            pause=pause,
        )
        for runner in runners
    )
    feeds = [f for f in opened if f is not None]
    if not feeds:
        err_console.print(
            "warning: daemon.push is on but no connector of these pairs has a push channel "
            "set up; polling every daemon.interval_seconds (docs/operations.md, Push)",
            markup=False,
        )
    return feeds


class _PairOutcomes:
    """The exit code of each pair whose latest daemon run failed, the most recent failure last.

    Why: a scheduler running ``daemon --cycles N`` (or a supervisor watching it stop) must tell a
    pair that is not syncing from a healthy one, so the daemon exits like ``sync`` would have for
    the most recent of those failures; a pair whose later run succeeded no longer counts.  The
    SLA and reason-capture jobs report errors through the same ``on_error`` by name, and a pair
    may share a job's name, so jobs are wrapped (:meth:`job`) to tell their errors apart; their
    failures are printed but do not decide the exit code, as they are not pair runs.
    """

    def __init__(self, pairs: Iterable[str]) -> None:
        self.pairs = set(pairs)
        self.failing: dict[str, int] = {}
        self._job_error: CrmBridgeError | None = None

    def job(self, run: Callable[[], str]) -> Callable[[], str]:
        """``run`` with its error remembered, so :meth:`failed` can tell it from a pair's."""

        def job() -> str:
            try:
                return run()
            except CrmBridgeError as exc:
                self._job_error = exc
                raise

        return job

    def succeeded(self, pair: str) -> None:
        """A run of ``pair`` ended ``ok``."""
        self.failing.pop(pair, None)

    def failed(self, name: str, exc: CrmBridgeError) -> None:
        """The daemon's ``on_error``: a pair run or a job raised ``exc``."""
        from_job, self._job_error = exc is self._job_error, None
        if name in self.pairs and not from_job:
            self.failing.pop(name, None)
            self.failing[name] = exc.exit_code


def _feature_jobs(session: Session) -> list[tuple[str, Callable[[], str]]]:
    """The SLA evaluation and reason capture, when configured, as daemon jobs."""
    jobs: list[tuple[str, Callable[[], str]]] = []
    settings = session.config.settings
    if settings.sla is not None:
        from crm_bridge.sla.engine import build_engine

        engine = build_engine(settings.sla, session.connector, session.store, session.now)
        jobs.append(("sla", lambda: engine.run_cycle().summary()))
    if settings.reasons is not None:
        from crm_bridge.reasons.capture import ReasonCapture, person_links

        capture = ReasonCapture(
            settings.reasons,
            crm=session.connector(settings.reasons.crm),
            marketing=session.connector(settings.reasons.marketing),
            store=session.store,
            now=session.now,
            links=person_links(settings.pairs, settings.reasons),
        )
        jobs.append(("reasons", lambda: capture.run_cycle().summary()))
    return jobs


@app.command("status")
def status(
    config: ConfigOption = None, secrets_file: SecretsFileOption = None, pair: PairOption = None
) -> None:
    """Last runs per pair: what they did, API calls used, errors, and open dead letters.

    Exits 10 when the last run of a shown pair failed or was aborted, so a health check can tell.

    Example: crm-bridge status --config config.toml
    """
    unsuccessful: list[str] = []
    with guarded():
        loaded = load(config, secrets_file)
        with Session(loaded) as session, session.store.transaction(readonly=True) as tx:
            table = Table(title="last runs")
            for col in ("pair", "started", "status", "counts", "calls", "error"):
                table.add_column(col, overflow="fold")
            for name in session.pair_names(pair):
                runs = tx.last_runs(name, limit=5)
                if runs and runs[0].status in UNSUCCESSFUL_RUNS:
                    unsuccessful.append(f"{name} ({runs[0].status})")
                for run in runs:
                    counts = " ".join(f"{k}={v}" for k, v in sorted(run.counts.items()) if v)
                    calls = " ".join(f"{k}={v}" for k, v in run.calls.items())
                    table.add_row(
                        name,
                        run.started_at.isoformat(timespec="seconds"),
                        run.status,
                        counts,
                        calls,
                        run.error or "",
                    )
                open_dl = len(tx.dead_letters(pair=name, status="open", limit=100_000))
                out.print(f"pair {name}: {open_dl} open dead letters", markup=False)
            out.print(table)
            workers = workers_table(session.store)  # PostgreSQL with `crm-bridge worker` only
            if workers is not None:
                out.print(workers)
            features = feature_runs_table(session.store)
            if features is not None:
                out.print(features)
    if unsuccessful:
        err_console.print(
            f"error: the last run of pair {', '.join(unsuccessful)} did not succeed",
            markup=False,
        )
        raise typer.Exit(LAST_RUN_FAILED_EXIT)


state_app = typer.Typer(
    help="Inspect or reset the sync state (links, cursors).", no_args_is_help=True
)
app.add_typer(state_app, name="state")


@state_app.command("show")
def state_show(config: ConfigOption = None, secrets_file: SecretsFileOption = None) -> None:
    """Counts of links, cursors, dead letters and runs per pair.

    Example: crm-bridge state show --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
        with Session(loaded) as session, session.store.transaction(readonly=True) as tx:
            out.print(json.dumps(tx.summary(), indent=2, default=str), markup=False)


@state_app.command("reset")
def state_reset(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    pair: Annotated[str, typer.Option("--pair", "-p", help="The pair to forget.")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget a pair's links, cursors and dead letters (the next sync re-matches by identity).

    Example: crm-bridge state reset --config config.toml --pair main --yes
    """
    with guarded():
        loaded = load(config, secrets_file)
        with Session(loaded) as session:
            (name,) = session.pair_names(pair or None) if pair else [""]
            if not name:
                raise typer.BadParameter("--pair is required")
            if not yes:
                typer.confirm(f"Forget all sync state of pair {name!r}?", abort=True)
            with session.store.writer_lock(pair_lock_name(name)), session.store.transaction() as tx:
                removed = tx.reset_pair(name)
            out.print(f"reset {name}: {removed}", markup=False)


dlq_app = typer.Typer(
    help="Records a side rejected, kept with the reason until replayed.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")


REASONS_DEAD_LETTER_PAIR = "reasons"
"""The reason capture keeps its dead letters under this pair name (crm_bridge.reasons.capture)."""
DLQ_LIST_LIMIT = 1000
"""Rows ``dlq list`` prints at most; ``--summary`` counts every matching letter."""


def filter_dead_letters(
    letters: Iterable[DeadLetter],
    *,
    code: str | None = None,
    obj: str | None = None,
    since: datetime | None = None,
) -> list[DeadLetter]:
    """The letters matching every given filter (code and object case-insensitively).

    ``since`` compares with ``last_seen``: a letter that failed again after ``since`` is news.
    """
    wanted_code = code.upper() if code else None
    wanted_obj = obj.lower() if obj else None
    return [
        dl
        for dl in letters
        if (wanted_code is None or (dl.error_code or "").upper() == wanted_code)
        and (wanted_obj is None or dl.obj.lower() == wanted_obj)
        and (since is None or dl.last_seen >= since)
    ]


def summarize_dead_letters(letters: Iterable[DeadLetter]) -> list[tuple[str, int, str]]:
    """``(code, count, fix)`` per code, most frequent first (the table of ``--summary``)."""
    counts = Counter(dl.error_code or "(no code)" for dl in letters)
    return [(code, n, fix_for(code)) for code, n in counts.most_common()]


@dlq_app.command("list")
def dlq_list(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    pair: PairOption = None,
    status_filter: Annotated[
        str, typer.Option("--status", help="open, replayed or dismissed.")
    ] = "open",
    code: Annotated[
        str | None, typer.Option("--code", help="Only this error code, e.g. OWNER_NOT_FOUND.")
    ] = None,
    obj: Annotated[
        str | None, typer.Option("--object", help="Only this pair object, e.g. leads.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only letters last seen at/after this date or datetime."),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary", help="Counts by code, each with the key or command that fixes it."
        ),
    ] = False,
) -> None:
    """List dead letters with their reason and attempts, or --summary them by code.

    Example: crm-bridge dlq list --config config.toml --summary --since 2026-03-01
    """
    with guarded():
        if status_filter not in ("open", "replayed", "dismissed"):
            raise typer.BadParameter("--status must be open, replayed or dismissed")
        after = parse_since(since)
        loaded = load(config, secrets_file)
        with Session(loaded) as session, session.store.transaction(readonly=True) as tx:
            if pair is not None and pair != REASONS_DEAD_LETTER_PAIR:
                session.pair_names(pair)  # a typo is a config error, not an empty list
            wanted = cast(DeadLetterStatus, status_filter)
            letters = filter_dead_letters(
                tx.dead_letters(pair=pair, status=wanted, limit=10_000_000),
                code=code,
                obj=obj,
                since=after,
            )
        if summary:
            table = Table(title=f"{status_filter} dead letters by code ({len(letters)} in all)")
            for col in ("code", "count", "fix"):
                table.add_column(col, overflow="fold")
            for found, count, fix in summarize_dead_letters(letters):
                table.add_row(found, str(count), fix)
            out.print(table)
            return
        table = Table(title=f"{status_filter} dead letters")
        for col in (
            "id",
            "pair",
            "object",
            "rejected by",
            "source record",
            "code",
            "reason",
            "attempts",
        ):
            table.add_column(col, overflow="fold")
        for dl in letters[:DLQ_LIST_LIMIT]:
            table.add_row(
                str(dl.id),
                dl.pair,
                dl.obj,
                dl.side,
                dl.record_key,
                dl.error_code or "",
                dl.reason,
                str(dl.attempts),
            )
        out.print(table)
        if len(letters) > DLQ_LIST_LIMIT:
            out.print(
                f"showing {DLQ_LIST_LIMIT} of {len(letters)}: narrow with --code/--object/--since "
                "or count them with --summary",
                markup=False,
            )


@dlq_app.command("show")
def dlq_show(
    dl_id: int, config: ConfigOption = None, secrets_file: SecretsFileOption = None
) -> None:
    """Show one dead letter in full (payload included).

    Example: crm-bridge dlq show 12 --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
        with Session(loaded) as session, session.store.transaction(readonly=True) as tx:
            dl = tx.dead_letter(dl_id)
            if dl is None:
                err_console.print(f"no dead letter {dl_id}")
                raise typer.Exit(1)
            data: dict[str, Any] = dataclasses.asdict(dl)
            out.print(json.dumps(data, indent=2, default=str), markup=False)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Dead letter ids (default: all open).")
    ] = None,
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    pair: PairOption = None,
) -> None:
    """Re-read the source records of dead letters and write them again now.

    Example: crm-bridge dlq replay 12 13 --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
        with Session(loaded) as session:
            with session.store.transaction(readonly=True) as tx:
                items = (
                    [tx.dead_letter(i) for i in ids]
                    if ids
                    else tx.dead_letters(pair=pair, status="open", limit=100_000)
                )
            chosen = [dl for dl in items if dl is not None and dl.status == "open"]
            with session.store.pair_locks(dl.pair for dl in chosen):
                for name in {dl.pair for dl in chosen}:
                    report = session.runner(name).replay([dl for dl in chosen if dl.pair == name])
                    out.print(
                        f"pair {name}: replayed={report.counts['replayed']} still failing={report.counts.get('replay_dead_lettered', 0)}",
                        markup=False,
                    )
