"""`studio serve`: the supervisor, the page, and a launch that stays local by default.

Kept small on purpose: it decides whether it may listen where it was asked to
(`studio.web.server`), starts the one `Supervisor`, builds the page and serves it
until SIGINT or SIGTERM, then stops the running sweep (its process tree included)
before exiting.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading

from studio.cli.args import fail
from studio.web.server import MAX_UPLOAD, is_loopback, never_served, parse_auth, url_host


def serve(args) -> int:
    try:
        auth = parse_auth(args.auth)
    except ValueError as exc:
        return fail(str(exc))
    if not is_loopback(args.host):
        if auth is None and not args.insecure:
            return fail(f"--host {args.host} makes the studio reachable from other machines, and anyone who "
                        "reaches it can start runs: pass --auth user:password (or --insecure to allow it anyway)")
        if auth is None:
            print(f"studio: warning: serving on {args.host} without a password (--insecure)", file=sys.stderr)
    os.environ["STUDIO_REDACT_PATHS"] = "1"  # refusals name no server folder (runner.config)
    if getattr(args, "trust_remote_code", False):
        os.environ["STUDIO_TRUST_REMOTE_CODE"] = "1"  # read by runner.host.validate for every run
    if getattr(args, "allow_engines", False):
        os.environ["STUDIO_ALLOW_ENGINES"] = "1"  # read by studio.sweeps.server_settings for every server sweep

    from starlette.middleware import Middleware

    from studio.exchange.serving_run import run_server_sweep
    from studio.sweeps.supervisor import Supervisor
    from studio.web.app import CSS, build_app, theme
    from studio.web.http_guard import AccessGuard, PathRefusalGuard
    from studio.web.plotly_script import PlotlyScript

    supervisor = Supervisor(args.db, resume=not getattr(args, "no_resume", False), server_runner=run_server_sweep)
    if supervisor.interrupted_at_start:
        print(f"studio: marked {len(supervisor.interrupted_at_start)} run(s) a previous server left unfinished "
              "as interrupted", file=sys.stderr)
    if supervisor.resumed_at_start:
        print(f"studio: resumed the queued runs of sweep(s) {', '.join(map(str, supervisor.resumed_at_start))} "
              "that a previous server never started (--no-resume leaves them interrupted)", file=sys.stderr)
    app = build_app(supervisor, supervisor.db_path)
    app.queue(default_concurrency_limit=4)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        try:
            app.launch(
                # show_error=False: an unexpected exception reaches the user as a bare "Error"
                # (its text may hold server paths); refusals (gr.Error) are still shown in full
                # gradio builds its own URLs from server_name: an IPv6 address needs its brackets
                server_name=url_host(args.host), server_port=args.port, auth=auth, share=False, show_error=False,
                max_file_size=MAX_UPLOAD, allowed_paths=[], blocked_paths=never_served(supervisor.db_path),
                prevent_thread_lock=True, quiet=True,
                footer_links=["api"], theme=theme(), css=CSS, ssr_mode=False, mcp_server=False,
                app_kwargs={"middleware": [Middleware(PathRefusalGuard), Middleware(AccessGuard),
                                                   Middleware(PlotlyScript)]},
            )
        except OSError as exc:
            return fail(f"cannot listen on {args.host}:{args.port} ({exc}); pass a free --port")
        print(f"studio: serving on http://{url_host(args.host)}:{args.port} (database {supervisor.db_path}; "
              "Ctrl+C stops it)", flush=True)
        while not stop.wait(1.0):  # a timed wait, so the signal handler always gets to run
            pass
    finally:
        print("studio: stopping: ending the running sweep, if any", file=sys.stderr, flush=True)
        supervisor.shutdown()
        app.close()
        shutil.rmtree(app.studio_export_dir, ignore_errors=True)  # CSV/JSON/HTML downloads made this session
    return 0
