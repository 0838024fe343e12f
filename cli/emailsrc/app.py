"""The command line: options -> settings -> pipeline -> rendered report -> exit code."""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec

import typer
from rich.console import Console

from . import __version__, pipeline
from .events import EventName
from .exitcodes import ExitCode
from .formats import FormatError, all_formats
from .formats.mapped_csv import parse_assignments
from .progress import make_reporter
from .render import formats_data, render_formats, render_report, render_status
from .report import RunReport
from .secrets import RedactingStream, WriteKey
from .settings import (
    DEFAULT_ENDPOINT,
    DEFAULT_RATE,
    InputSettings,
    RunSettings,
    SendSettings,
    SettingsError,
    default_state_path,
    parse_when,
    retry_tuning,
)

P = ParamSpec("P")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Backfill and replay historical email activity into Segment.",
)

Files = Annotated[list[str], typer.Argument(help="CSV / JSONL exports (.gz too); - for stdin.")]
WriteKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--write-key",
        envvar="SEGMENT_WRITE_KEY",
        show_envvar=True,
        help="The Segment source's write key (never printed in full).",
    ),
]
EndpointOpt = Annotated[
    str,
    typer.Option(
        "--endpoint",
        envvar="SEGMENT_ENDPOINT",
        show_envvar=True,
        help="Tracking API host; EU: https://events.eu1.segmentapis.com.",
    ),
]
RateOpt = Annotated[
    float,
    typer.Option(
        "--rate",
        envvar="EMAILSRC_RATE",
        show_envvar=True,
        min=0,
        help="Events per second (token bucket); 0 = unlimited.",
    ),
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state",
        envvar="EMAILSRC_STATE",
        show_envvar=True,
        help="The SQLite ledger (default under $XDG_STATE_HOME/emailsrc/).",
    ),
]
FormatOpt = Annotated[
    str | None, typer.Option("--format", help="Force an input format (see `emailsrc formats`).")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Everything except the network.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", help="Write each batch as posted, one JSON per line.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="The summary as one JSON object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
RejectsOpt = Annotated[
    Path | None, typer.Option("--rejects", help="Where to write rejected records (JSONL).")
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--id-namespace", help="messageId namespace (default: a fingerprint of the write key)."
    ),
]
MachineOpensOpt = Annotated[
    bool, typer.Option("--exclude-machine-opens", help="Skip machine (privacy proxy) opens.")
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Event time from (inclusive): 2025-06-01, 7d.")
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Event time until (exclusive).")]
MapOpt = Annotated[
    list[str] | None,
    typer.Option("--map", help="FIELD=COLUMN for any CSV (event, timestamp, recipient, ...)."),
]
EventMapOpt = Annotated[
    list[str] | None, typer.Option("--event-map", help="VALUE=EVENT: a file value to an event.")
]
MappingOpt = Annotated[
    Path | None, typer.Option("--mapping", help="A TOML file with [fields] and [events].")
]
IntegrationsOpt = Annotated[
    str | None, typer.Option("--integrations", help="The integrations object as JSON.")
]
OnlyOpt = Annotated[
    list[str] | None,
    typer.Option("--only-destination", help="Send to this destination only (repeatable)."),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude-destination", help="Keep events from this destination (repeatable)."),
]
KeepCioOpt = Annotated[
    bool,
    typer.Option(
        "--keep-customerio", help="Let events reach Customer.io destinations (excluded by default)."
    ),
]
TransportOpt = Annotated[
    str, typer.Option("--transport", help="http (ours) or sdk (segment-analytics-python).")
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", min=1, max=16, help="Batches in flight at once.")
]


class _Exit(Exception):
    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def _err_console() -> Console:
    return Console(stderr=True, highlight=False)


def guarded(command: Callable[P, None]) -> Callable[P, None]:
    """Expected stops become one line on stderr and their exit code, never a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except (_Exit, pipeline.Stop) as stop:
            _err_console().print(f"emailsrc: {stop}", markup=False)
            raise typer.Exit(int(stop.code)) from None
        except FormatError as error:
            _err_console().print(f"emailsrc: {error}", markup=False)
            raise typer.Exit(int(ExitCode.USAGE)) from None

    return run


def _when(value: str | None) -> Any:
    try:
        return parse_when(value) if value else None
    except SettingsError as error:
        raise _Exit(str(error), ExitCode.USAGE) from None


def _window(since: str | None, until: str | None) -> tuple[Any, Any]:
    """--since / --until as aware datetimes; an empty window is a mistake, not a no-op."""
    start, end = _when(since), _when(until)
    if start is not None and end is not None and end <= start:
        raise _Exit(
            f"--until ({end.isoformat()}) must be after --since ({start.isoformat()})",
            ExitCode.USAGE,
        )
    return start, end


def _inputs(
    files: list[str],
    format_name: str | None,
    maps: list[str] | None,
    event_maps: list[str] | None,
    mapping: Path | None,
    machine: bool,
    since: str | None,
    until: str | None,
) -> InputSettings:
    try:
        field_map = parse_assignments(maps or [], "--map")
        event_map = parse_assignments(event_maps or [], "--event-map")
    except ValueError as error:
        raise _Exit(str(error), ExitCode.USAGE) from None
    if format_name:
        names = [fmt.name for fmt in all_formats()]
        if format_name not in names:
            raise _Exit(
                f"unknown format {format_name!r}; one of: {', '.join(names)}", ExitCode.USAGE
            )
    start, end = _window(since, until)
    return InputSettings(
        files=tuple(files),
        format_name=format_name,
        field_map=field_map,
        event_map=event_map,
        mapping_file=mapping,
        exclude_machine_opens=machine,
        since=start,
        until=end,
    )


def _send(
    write_key: str | None,
    endpoint: str,
    rate: float,
    namespace: str | None,
    integrations: str | None,
    only: list[str] | None,
    exclude: list[str] | None,
    keep_customerio: bool,
    transport: str,
    concurrency: int,
) -> SendSettings:
    raw: dict[str, Any] = {}
    if integrations:
        try:
            raw = json.loads(integrations)
        except json.JSONDecodeError as error:
            raise _Exit(f"--integrations is not JSON: {error.msg}", ExitCode.USAGE) from None
        if not isinstance(raw, dict):
            raise _Exit("--integrations must be a JSON object", ExitCode.USAGE)
    if transport not in ("http", "sdk"):
        raise _Exit("--transport is http or sdk", ExitCode.USAGE)
    key = None
    if write_key:
        try:
            key = WriteKey(write_key)
        except ValueError as error:
            raise _Exit(str(error), ExitCode.USAGE) from None
    try:
        tuning = retry_tuning(os.environ)
    except SettingsError as error:
        raise _Exit(str(error), ExitCode.USAGE) from None
    return SendSettings(
        write_key=key,
        endpoint=endpoint.rstrip("/"),
        rate=rate,
        transport=transport,
        concurrency=concurrency,
        id_namespace=namespace,
        integrations=raw,
        only_destinations=tuple(only or ()),
        exclude_destinations=tuple(exclude or ()),
        keep_customerio=keep_customerio,
        **tuning,
    )


def _run(
    command: Callable[..., RunReport],
    settings: RunSettings,
    *,
    quiet: bool,
    as_json: bool,
    debug: bool,
) -> None:
    """Run a pipeline command with progress on stderr, then render and exit with its code.
    With --json and a stderr that is not a terminal (CI), progress stays off too."""
    reporter = make_reporter(quiet or (as_json and not sys.stderr.isatty()))
    try:
        report = command(settings, reporter, debug=debug)
    finally:
        reporter.close()
    _finish(report, as_json, settings.send.write_key)


def _finish(report: RunReport, as_json: bool, redact: WriteKey | None) -> None:
    if as_json:
        text = json.dumps(report.to_dict(), indent=None, default=str)
        typer.echo(redact.redact(text) if redact else text)
        # stdout is for the machine; a person or a CI log still gets the one line why.
        if report.error:
            line = redact.redact(report.error) if redact else report.error
            _err_console().print(f"emailsrc: {line}", markup=False, soft_wrap=True)
    else:
        render_report(report, _err_console())
    raise typer.Exit(int(report.exit_code))


@app.command()
@guarded
def backfill(
    files: Files,
    write_key: WriteKeyOpt = None,
    endpoint: EndpointOpt = DEFAULT_ENDPOINT,
    rate: RateOpt = DEFAULT_RATE,
    state: StateOpt = None,
    format_name: FormatOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    rejects: RejectsOpt = None,
    id_namespace: NamespaceOpt = None,
    exclude_machine_opens: MachineOpensOpt = False,
    since: SinceOpt = None,
    until: UntilOpt = None,
    maps: MapOpt = None,
    event_maps: EventMapOpt = None,
    mapping: MappingOpt = None,
    integrations: IntegrationsOpt = None,
    only_destination: OnlyOpt = None,
    exclude_destination: ExcludeOpt = None,
    keep_customerio: KeepCioOpt = False,
    transport: TransportOpt = "http",
    concurrency: ConcurrencyOpt = 4,
) -> None:
    """Read, normalize, dedupe and send exports to Segment (or --dry-run)."""
    settings = RunSettings(
        command="backfill",
        inputs=_inputs(
            files, format_name, maps, event_maps, mapping, exclude_machine_opens, since, until
        ),
        send=_send(
            write_key,
            endpoint,
            rate,
            id_namespace,
            integrations,
            only_destination,
            exclude_destination,
            keep_customerio,
            transport,
            concurrency,
        ),
        state_path=state or default_state_path(),
        dry_run=dry_run,
        output=output,
        rejects=rejects,
    )
    _run(pipeline.backfill, settings, quiet=quiet, as_json=as_json, debug=debug)


@app.command()
@guarded
def validate(
    files: Files,
    format_name: FormatOpt = None,
    max_rejects: Annotated[
        int, typer.Option("--max-rejects", min=0, help="Rejected records allowed before failing.")
    ] = 0,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    rejects: RejectsOpt = None,
    state: StateOpt = None,
    rate: RateOpt = DEFAULT_RATE,
    exclude_machine_opens: MachineOpensOpt = False,
    since: SinceOpt = None,
    until: UntilOpt = None,
    maps: MapOpt = None,
    event_maps: EventMapOpt = None,
    mapping: MappingOpt = None,
) -> None:
    """Dry-run for CI: exit 0 when clean, 1 with file:line reasons otherwise."""
    settings = RunSettings(
        command="validate",
        inputs=_inputs(
            files, format_name, maps, event_maps, mapping, exclude_machine_opens, since, until
        ),
        send=SendSettings(rate=rate),
        state_path=state or default_state_path(),
        dry_run=True,
        output=output,
        rejects=rejects,
        max_rejects=max_rejects,
    )
    _run(pipeline.validate, settings, quiet=quiet, as_json=as_json, debug=debug)


@app.command()
@guarded
def replay(
    since: Annotated[
        str, typer.Option("--since", help="Event time from (inclusive): 2025-06-01, 7d.")
    ],
    until: UntilOpt = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", help="Only these events (repeatable), loosely spelled: opened,clicked."
        ),
    ] = None,
    write_key: WriteKeyOpt = None,
    endpoint: EndpointOpt = DEFAULT_ENDPOINT,
    rate: RateOpt = DEFAULT_RATE,
    state: StateOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    rejects: RejectsOpt = None,
    id_namespace: NamespaceOpt = None,
    integrations: IntegrationsOpt = None,
    only_destination: OnlyOpt = None,
    exclude_destination: ExcludeOpt = None,
    keep_customerio: KeepCioOpt = False,
    transport: TransportOpt = "http",
    concurrency: ConcurrencyOpt = 4,
) -> None:
    """Re-send stored events in a time window, to the same or another destination."""
    try:
        # Repeatable, and each may be a comma-separated list: --event opened,clicked
        spelled = [name for text in event or [] for name in text.split(",") if name.strip()]
        names = tuple(dict.fromkeys(EventName.parse(name) for name in spelled))
    except ValueError as error:
        raise _Exit(str(error), ExitCode.USAGE) from None
    start, end = _window(since, until)
    settings = RunSettings(
        command="replay",
        inputs=InputSettings(since=start, until=end),
        send=_send(
            write_key,
            endpoint,
            rate,
            id_namespace,
            integrations,
            only_destination,
            exclude_destination,
            keep_customerio,
            transport,
            concurrency,
        ),
        state_path=state or default_state_path(),
        dry_run=dry_run,
        output=output,
        rejects=rejects,
        events=names,
    )
    _run(pipeline.replay, settings, quiet=quiet, as_json=as_json, debug=debug)


@app.command()
@guarded
def status(state: StateOpt = None, as_json: JsonOpt = False) -> None:
    """What the ledger holds: events, sent / pending / failed per destination, last runs."""
    settings = RunSettings(command="status", state_path=state or default_state_path())
    data = pipeline.status(settings)
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        render_status(data, _err_console())


@app.command()
@guarded
def formats(as_json: JsonOpt = False) -> None:
    """The input formats emailsrc knows and how each maps to the six events."""
    known = all_formats()
    if as_json:
        typer.echo(json.dumps(formats_data(known)))
    else:
        render_formats(known, _err_console())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"emailsrc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Backfill and replay historical email activity into Segment."""


def main() -> None:
    """Entry point: one clear line for every error, a traceback only with --debug."""
    debug = "--debug" in sys.argv
    key = _env_write_key()

    def redact(text: str) -> str:
        return key.redact(text) if key else text

    if key is not None:
        sys.stdout = RedactingStream(sys.stdout, key)
        sys.stderr = RedactingStream(sys.stderr, key)
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except KeyboardInterrupt:
        _err_console().print(
            "emailsrc: interrupted; run the same command again to continue", markup=False
        )
        sys.exit(int(ExitCode.INTERRUPTED))
    except typer.Abort:
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as error:  # a bug: say so in one line; --debug shows where
        # Usage errors: Typer raises click's (or its vendored copy's) ClickException, which
        # carries its own message and exit code; matched by shape so both versions work.
        show = getattr(error, "show", None)
        if callable(show) and isinstance(getattr(error, "exit_code", None), int):
            shown = io.StringIO()
            show(file=shown)
            sys.stderr.write(redact(shown.getvalue()))
            sys.exit(int(ExitCode.USAGE))
        if debug:
            sys.stderr.write(redact(traceback.format_exc()))
        _err_console().print(
            f"emailsrc: unexpected error: {redact(f'{type(error).__name__}: {error}')} "
            "(run again with --debug for details)",
            markup=False,
            soft_wrap=True,
        )
        sys.exit(int(ExitCode.UNEXPECTED))


def _env_write_key() -> WriteKey | None:
    value = os.environ.get("SEGMENT_WRITE_KEY")
    for position, argument in enumerate(sys.argv):
        if argument == "--write-key" and position + 1 < len(sys.argv):
            value = sys.argv[position + 1]
        elif argument.startswith("--write-key="):
            value = argument.partition("=")[2]
    try:
        return WriteKey(value) if value else None
    except ValueError:
        return None
