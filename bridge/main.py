"""The command line: each setting's option is built from its Config field's flag (config.py)."""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, TypeVar

import click

from bridge import __version__
from bridge.config import FLAGS, INERT_FLAGS, Config, ConfigError
from bridge.daemon import compile_mapping, main
from bridge.explain import explain_lines, format_text
from bridge.logs import setup
from bridge.mapping.lint import ERROR, WARNING, has_errors, lint, rollback
from bridge.mapping.loader import load_mapping_file
from bridge.mapping.schema import MappingConfig, MappingError
from bridge.web import tls, web_config

F = TypeVar("F", bound=Callable[..., Any])  # a click command, as its decorators take and give it

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Parsed(click.ParamType):
    """Command-line text through a Config field's parser, whose ValueError is the message."""

    def __init__(self, parse: Callable[[Any], Any], metavar: str) -> None:
        self.parse = parse
        self.name = metavar or "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def config_option(name: str, **overrides: Any) -> Callable[[F], F]:
    """The option of one Config field, as its flag defines it (config.py): spellings, type, default, help."""
    spec = FLAGS[name]
    settings: dict[str, Any] = {"default": spec.default, "help": f"{spec.help}  [default: {spec.shown}]"}
    if isinstance(spec.default, bool):  # a switch, with its off form in each spelling
        spellings = [f"{spelling}/--no-{spelling[2:]}" for spelling in spec.spellings]
    else:
        spellings = list(spec.spellings)
        settings.update(metavar=spec.metavar or None, multiple=isinstance(spec.default, tuple))
    if spec.choices:
        settings["type"] = click.Choice(spec.choices)
    elif spec.parse is not None:
        settings["type"] = Parsed(spec.parse, spec.metavar)
    return click.option(*spellings, name, **(settings | overrides))


def config_options(command: F) -> F:
    """Every Config field's option, in the order of the fields."""
    for name in reversed(FLAGS):
        command = config_option(name)(command)
    return command


def inert_flags(context: click.Context) -> list[tuple[str, str]]:
    """(flag, reason) for each inert flag given on the command line, to say once at start-up."""
    given = []
    for parameter in context.command.params:
        source = context.get_parameter_source(parameter.name) if parameter.name in INERT_FLAGS else None
        if source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT):
            given.append((parameter.opts[-1], INERT_FLAGS[parameter.name].inert))
    return given


@click.group(invoke_without_command=True, context_settings=CONTEXT)
@config_options
@click.option(
    "--check-config/--no-check-config",
    help="Validate flags, load and lint the mapping file, then exit: 0 for whatever statsd_exporter accepts, "
    "lint findings printed as warnings.  [default: off]",
)
@click.option(
    "--lint-strict",
    is_flag=True,
    help="With --check-config: exit 1 when the lint finds errors (CI for mapping files).  [default: off]",
)
@click.version_option(
    __version__,
    "--version",
    prog_name="statsd-bridge",
    message=f"%(prog)s %(version)s (Python {platform.python_version()}, {platform.python_implementation()})",
)
@click.pass_context
def cli(context: click.Context, check_config: bool, lint_strict: bool, **options: object) -> None:
    """Receive StatsD / DogStatsD lines and serve them to Prometheus.

    With no command, runs the bridge. `statsd-bridge explain --help` for the line explainer.
    """
    if context.invoked_subcommand is not None:
        return
    try:
        config = Config(**options)  # type: ignore[arg-type]
    except ConfigError as error:
        # name the option by both its spellings, whichever the command line used
        hint = " / ".join(f"'{spelling}'" for spelling in error.spellings)
        raise click.BadParameter(error.reason, param_hint=hint) from None
    setup(config.log_level, config.log_format)
    for flag, reason in inert_flags(context):
        fields = {"flag": flag, "reason": reason}
        logging.getLogger("bridge.main").info("flag has no effect here", extra={"fields": fields})
    try:
        mapping_text, mapping = compile_mapping(config)
    except MappingError as error:
        click.echo(f"statsd-bridge: bad mapping file: {error}", err=True)
        sys.exit(1)
    try:
        web = tls.load(config.web_config_file) if config.web_config_file else tls.Loaded(web_config.WebConfig())
    except web_config.WebConfigError as error:
        click.echo(f"statsd-bridge: bad web config file {config.web_config_file}: {error}", err=True)
        sys.exit(1)
    if check_config:
        ok = f"configuration OK ({len(mapping.rules)} mapping rules"
        if config.web_config_file:
            users = len(web.config.users)
            tls_on = "TLS" if web.context else "no TLS"
            ok = f"web config OK ({tls_on}, {users} basic auth user{'s' * (users != 1)})\n" + ok
        sys.exit(report_lint(mapping, ok, lint_strict))
    sys.exit(main(config, mapping, web, mapping_text))


def report_lint(mapping: MappingConfig, ok: str, strict: bool) -> int:
    """Print the lint's findings (to stderr) and a verdict; the exit code: 1 for errors, and only when strict.

    Without --lint-strict every finding is a warning: statsd_exporter accepts these files, and a
    pipeline that runs --check-config on them must keep passing after the swap.
    """
    findings = lint(mapping)
    if not strict:
        findings = [replace(finding, severity=WARNING) for finding in findings]
    for finding in findings:
        click.echo(str(finding), err=True)
    if note := rollback(mapping):
        click.echo(note, err=True)
    errors = sum(finding.severity == ERROR for finding in findings)
    if errors:
        click.echo(f"statsd-bridge: mapping file has {errors} error(s)", err=True)
        return 1
    warnings = len(findings)
    click.echo(ok + (f", {warnings} lint warning{'s' if warnings != 1 else ''})" if warnings else ")"))
    return 0


@cli.command(context_settings=CONTEXT)
@click.argument("lines", nargs=-1)
@config_option("mapping_config", help="The mapping file to explain against; none: every line is unmapped.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts.",
)
@click.option("--lint", "run_lint", is_flag=True, help="Lint the mapping file too; exit 1 when it has errors.")
@config_option("statsd_utf8_names")
def explain(
    lines: tuple[str, ...], mapping_config: str, output_format: str, run_lint: bool, statsd_utf8_names: bool
) -> None:
    """Show what the bridge makes of StatsD LINES (arguments, or one per line on stdin).

    For each line: how it parses, which rule matches, and which series it touches and how, or why
    it is rejected. Runs the daemon's own parser, mapper and store; nothing listens.
    """
    try:
        if mapping_config:
            mapping = load_mapping_file(mapping_config, statsd_utf8_names)
        else:
            mapping = MappingConfig(utf8_names=statsd_utf8_names)
    except MappingError as error:
        click.echo(f"statsd-bridge: bad mapping file: {error}", err=True)
        sys.exit(1)
    if not lines and not run_lint:
        stdin = sys.stdin.buffer
        if stdin.isatty():
            raise click.UsageError("give StatsD lines as arguments or on stdin")
        # bytes that are not UTF-8 ride along as surrogates, so their line is explained (as rejected)
        lines = tuple(line.rstrip(b"\r\n").decode("utf-8", "surrogateescape") for line in stdin)
    findings = lint(mapping) if run_lint else []
    logging.disable(logging.CRITICAL)  # the daemon's warnings about rejected lines: the explanation says it
    try:
        results = explain_lines(lines, mapping)
    finally:
        logging.disable(logging.NOTSET)  # for whoever calls the command in-process: tests, click's runner
    if output_format == "json":
        document: dict = {"mapping": mapping_config or None, "lines": results}
        if run_lint:
            document["lint"] = [asdict(finding) for finding in findings]
        click.echo(json.dumps(document, indent=2))
    else:
        if run_lint:
            for finding in findings:
                click.echo(str(finding))
            click.echo(f"lint: {len(findings)} finding(s)" if findings else "lint: no findings")
        if results:
            click.echo("\n\n".join(format_text(result) for result in results))
    sys.exit(1 if has_errors(findings) else 0)
