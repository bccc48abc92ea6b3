"""``crm-bridge worker``: run pair cycles as jobs shared by any number of worker processes.

Why a verb of its own beside ``daemon``: the daemon is the embedded default -- one process, a
SQLite file, nothing else to run -- and stays exactly that.  A worker needs a PostgreSQL store
(the queue, the heartbeats and the shared rate budgets live there), so it refuses SQLite with
the key to change instead of half-working.  See docs/operations.md, "Several workers".
"""

from __future__ import annotations

import signal
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from crm_bridge.cli._app import (
    ConfigOption,
    SecretsFileOption,
    app,
    err_console,
    guarded,
    load,
    out,
)
from crm_bridge.config import env_var_for
from crm_bridge.errors import ConfigError, ConfigProblem, CrmBridgeError
from crm_bridge.sync.runner import CycleReport

PairOption = Annotated[
    list[str] | None,
    typer.Option("--pair", "-p", help="Only these pairs (repeat; default: every pair)."),
]


def require_postgres(url: str) -> None:
    """Raise the configuration error ``worker`` gives for a store that is not PostgreSQL."""
    if make_url(url).get_backend_name() == "postgresql":
        return
    raise ConfigError(
        [
            ConfigProblem(
                "store.url",
                "crm-bridge worker needs a PostgreSQL store (the job queue, heartbeats and "
                "shared rate budgets live there); this store is SQLite",
                env_var=env_var_for("store", "url"),
                fix='set store.url = "postgresql+psycopg://USER@HOST/DB" (docs/operations.md, '
                "Several workers), or keep SQLite and run `crm-bridge daemon`",
            )
        ]
    )


@app.command("worker")
def worker(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    pair: PairOption = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="This worker's name in status and logs (default HOST:PID)."),
    ] = None,
    heartbeat: Annotated[
        float,
        typer.Option("--heartbeat", min=0.2, help="Seconds between heartbeats."),
    ] = 10.0,
    stalled_after: Annotated[
        float,
        typer.Option(
            "--stalled-after",
            min=1.0,
            help="A worker silent this long is dead: its job goes to another worker.",
        ),
    ] = 30.0,
    lock_wait: Annotated[
        float,
        typer.Option(
            "--lock-wait",
            min=0.0,
            help="Seconds a job waits for its pair's writer lock (a manual sync) before retrying.",
        ),
    ] = 30.0,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Retries of a failed cycle, with backoff.")
    ] = 3,
    features: Annotated[
        bool | None,
        typer.Option(
            "--features/--no-features",
            help="Run the SLA and reason-capture jobs (default: only a worker serving every pair).",
            show_default=False,
        ),
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
        typer.Option("--metrics-host", envvar="CRM_BRIDGE_METRICS_HOST", help="Metrics address."),
    ] = "127.0.0.1",
) -> None:
    """Run pair cycles from the PostgreSQL job queue until SIGTERM; start as many as you need.

    Every worker schedules every pair each daemon.interval_seconds, runs one pair at a time
    (never a pair another worker runs), and takes over the job of a worker that died.  The SLA
    and reason jobs run once per interval across the fleet; with daemon.push one worker listens
    to each pair's push channels and hinted cycles run at once.

    Example: crm-bridge worker --config config.toml --metrics-port 9464
    """
    from crm_bridge.http.budgets import use_budgets
    from crm_bridge.ops.service import serve_ops
    from crm_bridge.session import Session

    with guarded():
        loaded = load(config, secrets_file)
        require_postgres(loaded.settings.store.url)
        try:
            from crm_bridge.workers.budgets import SharedBudgets
            from crm_bridge.workers.metrics import WorkerMetrics
            from crm_bridge.workers.worker import PairWorker, WorkerOptions, default_worker_name
        except ImportError as exc:
            raise ConfigError(
                [
                    ConfigProblem(
                        "workers",
                        f"crm-bridge worker needs the job queue package ({exc.name} is missing)",
                        fix="pip install 'crm-bridge[workers]'",
                    )
                ]
            ) from exc
        with Session(loaded) as session:
            pairs = (
                sorted({n for p in pair for n in session.pair_names(p)})
                if pair
                else session.pair_names()
            )
            label = name or default_worker_name()
            from crm_bridge.cli.sync_cmd import _feature_jobs

            # A --pair worker is one of a split fleet: the store-wide jobs belong to a worker
            # of all pairs unless the operator says otherwise (docs/operations.md).
            runs_features = features if features is not None else not pair
            jobs = _feature_jobs(session) if runs_features else []
            # Before any connector exists: their limiters then draw on the shared budgets.
            budgets = SharedBudgets(session.store.engine, holder=label)
            previous = use_budgets(budgets)
            daemon = loaded.settings.daemon
            interval = daemon.interval_seconds
            tally: WorkerMetrics | None = None

            def on_job(
                who: str, job_pair: str, report: CycleReport | None, exc: CrmBridgeError | None
            ) -> None:
                if tally is not None:
                    tally.job(job_pair, exc is None)
                if exc is not None:
                    err_console.print(
                        f"job pair={job_pair} worker={who} failed: {exc}", markup=False
                    )
                    return
                assert report is not None
                counts = " ".join(f"{k}={v}" for k, v in sorted(report.counts.items()) if v)
                out.print(f"job pair={job_pair} worker={who} ok {counts}", markup=False)

            def on_feature(
                who: str, job: str, summary: str | None, exc: CrmBridgeError | None
            ) -> None:
                if tally is not None:
                    tally.feature(job, exc is None)
                if exc is not None:
                    err_console.print(f"feature {job} worker={who} failed: {exc}", markup=False)
                else:
                    out.print(f"feature {job} worker={who} ok {summary}", markup=False)

            def on_push(who: str, push_pair: str, kind: str, ok: bool) -> None:
                if tally is not None:
                    tally.push(push_pair, kind, ok)
                state = "ok" if ok else "failed"
                out.print(f"push pair={push_pair} worker={who} {kind} {state}", markup=False)

            try:
                runner = PairWorker(
                    session,
                    WorkerOptions(
                        name=label,
                        pairs=tuple(pairs),
                        interval=interval,
                        heartbeat=heartbeat,
                        stalled_after=stalled_after,
                        lock_wait=lock_wait,
                        retry_attempts=retries,
                        tick=min(1.0, heartbeat),
                        poll=min(1.0, heartbeat),
                        push=loaded.settings.daemon.push,
                        safety_poll=loaded.settings.daemon.safety_poll_seconds,
                    ),
                    on_job=on_job,
                    feature_jobs=jobs,
                    on_feature=on_feature,
                    on_push=on_push,
                )
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, lambda *_: runner.stop())
                # A fully fed pair is polled only every safety_poll: it may be quiet that long.
                slowest = max(interval, daemon.safety_poll_seconds if daemon.push else interval)
                ops = serve_ops(
                    session, pairs, interval=slowest, port=metrics_port, host=metrics_host
                )
                with ops as served:
                    tally = WorkerMetrics(served.metrics.registry, label)
                    if served.server is not None:
                        out.print(f"serving {served.url}/metrics and /healthz", markup=False)
                    out.print(f"worker {label} serving pairs {', '.join(pairs)}", markup=False)
                    if jobs:
                        names = ", ".join(n for n, _ in jobs)
                        out.print(f"worker {label} running feature jobs {names}", markup=False)
                    runner.run()
            finally:
                budgets.close()
                use_budgets(previous)
        out.print(f"worker {label} stopped", markup=False)
