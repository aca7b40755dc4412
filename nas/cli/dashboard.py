"""``nas dashboard --storage URL``: the live web dashboard over a study storage."""

from __future__ import annotations

import argparse
import errno

from dashboards import DashboardServer, create_app
from nas.cli._common import UsageError, add_storage, env_default, port_number, positive_float
from studies import StudyReader, load_study, open_storage, parse_storage_url, redact


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dashboard", help="serve the live Pareto dashboard of a study storage")
    add_storage(p)
    p.add_argument("--study", default=None, help="study to open first (default: the newest)")
    p.add_argument("--host", default=env_default("host", "127.0.0.1"), help="interface to listen on (env NAS_HOST)")
    p.add_argument(
        "--port", type=port_number, default=env_default("port", 8050, port_number), help="port (env NAS_PORT; 0: any)"
    )
    p.add_argument("--refresh", type=positive_float, default=5.0, help="seconds between storage reads (default 5)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    reader = StudyReader(open_storage(args.storage, create=False))
    if args.study is not None and args.study not in reader.study_names():
        load_study(reader.storage, args.study)  # a one-line error naming the studies that exist
    label = redact(parse_storage_url(args.storage))
    app = create_app(reader, storage_label=label, refresh_s=args.refresh, study=args.study)
    try:
        server = DashboardServer(app, host=args.host, port=args.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"nas dashboard: error: port {args.port} on {args.host} is in use; pass --port") from None
        raise UsageError(f"nas dashboard: error: cannot listen on {args.host}:{args.port} ({exc})") from None
    print(f"dashboard of {label}: {server.url} (Ctrl-C stops it)", flush=True)
    server.serve_forever()
    return 0
