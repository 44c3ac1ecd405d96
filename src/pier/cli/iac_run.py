"""What `pier apply/plan/delete` do; imported only when one of them runs (it pulls in the
CloudFormation engine and botocore's service model, which every other `pier` command, and
every instance's `pier serve`, would otherwise pay for at start)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from pier.cli.common import HomeOption, connect, fail, out, platform_settings
from pier.cli.options import (
    FileOption,
    MapImageOption,
    MapModelOption,
    MappingOption,
    MapS3Option,
    ParameterOption,
    StackOption,
    TimeoutOption,
)
from pier.errors import PierError
from pier.iac.cloudformation import engine, execute
from pier.iac.cloudformation.engine import Action, Plan
from pier.iac.cloudformation.execute import Reporter
from pier.iac.cloudformation.intrinsics import Pseudo
from pier.iac.cloudformation.mapping import LocationMap, parse_pairs, read_mapping
from pier.iac.cloudformation.stack import Stack, compile_stack, stack_name_error
from pier.iac.cloudformation.state import ApplyError, error_text
from pier.iac.cloudformation.template import TemplateError, parse
from pier.iac.source import Duplicate, Located, LocatedList, SourceError, read


def _plain(value: Any, file: str) -> Any:
    """A template built in memory as the Located values templates are read into (a spec's
    template already is one, with the spec's lines: kept as it is)."""
    if isinstance(value, Located | LocatedList):
        return value
    if isinstance(value, dict):
        located = Located({k: _plain(v, file) for k, v in value.items()})
        located.file = file
        return located
    if isinstance(value, list):
        items = LocatedList([_plain(v, file) for v in value])
        items.file = file
        items.item_lines = [0] * len(items)
        return items
    return value


def _template_doc(file: Path, duplicates: list[Duplicate]) -> tuple[Any, str | None]:
    """The template to apply and, for a pier spec, its stack name (the endpoint's). Keys
    given twice are gathered in `duplicates` (the template decides; a spec refuses them)."""
    doc = read(file, cfn_tags=True, duplicates=duplicates)
    from pier.iac import spec

    if not spec.is_spec(doc):
        return doc, None
    if duplicates:
        raise SourceError(duplicates[0].message)
    template = _plain(spec.to_local_template(doc), str(file))
    for resource in template.get("Resources", {}).values():
        name = resource.get("Properties", {}).get("EndpointName")
        if resource.get("Type") == "AWS::SageMaker::Endpoint" and isinstance(name, str):
            return template, name
    return template, None


def _given(parameters: list[str] | None) -> dict[str, str]:
    given: dict[str, str] = {}
    for item in parameters or []:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise TemplateError(f"--parameter {item!r}: expected NAME=VALUE")
        if name in given:
            raise TemplateError(f"--parameter {name} is given twice")
        given[name] = value
    return given


def _locations(
    map_image: list[str] | None,
    map_model: list[str] | None,
    mapping: Path | None,
    map_s3: list[str] | None = None,
) -> LocationMap:
    base = LocationMap() if mapping is None else read_mapping(mapping)
    given = LocationMap(
        parse_pairs(map_image or [], "--map-image", Path.cwd(), local=False),
        parse_pairs(map_model or [], "--map-model", Path.cwd(), local=True),
        parse_pairs(map_s3 or [], "--map-s3", Path.cwd(), local=False),
    )
    return base.merged(given)


def compile_file(
    file: Path,
    parameters: list[str] | None,
    stack_name: str | None,
    map_image: list[str] | None,
    map_model: list[str] | None,
    mapping: Path | None,
    home: Path | None,
    map_s3: list[str] | None = None,
) -> Stack:
    """The stack the file describes; exit 2 with one line if it cannot be applied."""
    settings = platform_settings(home=home)
    try:
        duplicates: list[Duplicate] = []
        doc, spec_stack = _template_doc(file, duplicates)
        name = stack_name or spec_stack or _default_stack_name(file)
        template = parse(doc, str(file), duplicates)
        pseudo = Pseudo(settings.region, settings.account, name)
        return compile_stack(
            template,
            _given(parameters),
            pseudo,
            _locations(map_image, map_model, mapping, map_s3),
        )
    except (TemplateError, SourceError) as exc:
        raise fail(exc.message, 2) from None
    except PierError as exc:  # e.g. a spec's own validation
        raise fail(exc.message, 2) from None


def _default_stack_name(file: Path) -> str:
    """The file's name without its extension, with `_` and `.` read as `-`."""
    return "".join(c if c.isalnum() or c == "-" else "-" for c in file.stem)


def _plan(client: Any, stack: Stack) -> Plan:
    try:
        return engine.plan(client, stack)
    except TemplateError as exc:
        raise fail(exc.message, 2) from None
    except Exception as exc:  # botocore: the platform could not be read
        raise fail(f"cannot read the stack from the platform: {error_text(exc)}", 1) from None


_SIGNS = {
    Action.CREATE: "[green]+[/green]",
    Action.NONE: "[dim]=[/dim]",
    Action.TAGS: "[yellow]~[/yellow]",
    Action.UPDATE: "[yellow]~[/yellow]",
    Action.REPLACE: "[magenta]±[/magenta]",
    Action.RECREATE: "[magenta]±[/magenta]",
    Action.DELETE: "[red]-[/red]",
}


def _print_plan(the_plan: Plan, source: Path) -> None:
    stack = the_plan.stack
    secrets = stack.secrets
    out.print(f"Stack [bold]{escape(stack.name)}[/bold] ({escape(str(source))}):")
    for change in the_plan.changes:
        replaces = ""
        if change.action is Action.REPLACE and change.old is not None:
            replaces = f" (replaces {change.old.name})"
        rest = f"{change.action:<11} {change.kind.short:<15} {change.logical_id:<20} {change.name}"
        out.print(f"  {_SIGNS[change.action]} {escape(rest + replaces)}")
        for detail in change.details:
            out.print(f"        {escape(engine.redact(detail, secrets))}")
    if stack.skipped:
        out.print("Skipped (pier does not run these):")
        for skipped in stack.skipped:
            out.print(
                f"  [dim]·[/dim] {escape(skipped.logical_id):<20} {escape(skipped.type):<45}"
                f" {escape(skipped.reason)}"
            )
    if stack.skipped_outputs:
        out.print("Outputs skipped (they use resources pier does not run):")
        for name, uses in stack.skipped_outputs:
            out.print(f"  [dim]·[/dim] {escape(name):<20} uses {escape(', '.join(uses))}")
    if stack.inactive and not stack.skipped:
        out.print("Not created:")
    for logical_id, condition in stack.inactive:
        out.print(
            f"  [dim]·[/dim] {escape(logical_id)}: not created (Condition {condition} is false)"
        )
    for note in stack.notes:
        out.print(f"[yellow]note:[/yellow] {escape(engine.redact(note, secrets))}")
    for output in stack.outputs:
        if output.export:
            out.print(
                f"[yellow]note:[/yellow] Outputs.{output.name}: the export name "
                f"{escape(output.export)} is ignored (pier has no cross-stack imports)"
            )
    counts = {
        a: sum(1 for c in the_plan.changes if c.action is a and not c.cleanup) for a in Action
    }
    summary = ", ".join(f"{n} to {a}" for a, n in counts.items() if n and a is not Action.NONE)
    out.print(summary + "." if summary else "No changes: the stack is up to date.")


def _print_outputs(stack: Stack) -> None:
    if not stack.outputs:
        return
    out.print("Outputs:")
    for output in stack.outputs:
        out.print(f"  {escape(output.name)} = {escape(engine.redact(output.value, stack.secrets))}")


class _ConsoleReporter(Reporter):
    """Done steps as lines; an endpoint's status as a line when it changes, and live (with the
    seconds waited) on a terminal."""

    def __init__(self) -> None:
        self.status = out.status("")
        self.live = False
        self.last: tuple[str, str] | None = None

    def step(self, text: str) -> None:
        self.stop()
        out.print(f"  [green]✓[/green] {escape(text)}")

    def waiting(self, subject: str, status: str, elapsed: float) -> None:
        if (subject, status) != self.last:
            self.stop()
            out.print(f"  [dim]…[/dim] {escape(subject)}: {escape(status)}")
            self.last = (subject, status)
        if out.is_terminal:
            self.status.update(f"{escape(subject)}: {escape(status)} ({elapsed:.0f} s)")
            if not self.live:
                self.status.start()
                self.live = True

    def stop(self) -> None:
        if self.live:
            self.status.stop()
            self.live = False


def apply(
    file: FileOption,
    parameter: ParameterOption,
    stack_name: StackOption,
    map_image: MapImageOption,
    map_model: MapModelOption,
    mapping: MappingOption,
    timeout: TimeoutOption,
    home: HomeOption,
    map_s3: MapS3Option = None,
) -> None:
    """Create or update what a CloudFormation template or pier spec describes.

    Applying the same file twice changes nothing.
    A changed Model or EndpointConfig is replaced, its endpoint updated blue/green.
    What left the file is deleted; a failed apply is rolled back.
    """
    stack = compile_file(file, parameter, stack_name, map_image, map_model, mapping, home, map_s3)
    client = connect(home)
    the_plan = _plan(client, stack)
    _print_plan(the_plan, file)
    if not the_plan.has_changes:
        _print_outputs(stack)
        return
    reporter = _ConsoleReporter()
    try:
        execute.apply(client, the_plan, reporter, timeout)
    except ApplyError as exc:
        reporter.stop()
        raise fail(exc.message, 1) from None
    finally:
        reporter.stop()
    out.print(f"[green]✓[/green] stack {escape(stack.name)} applied")
    _print_outputs(stack)


def plan(
    file: FileOption,
    parameter: ParameterOption,
    stack_name: StackOption,
    map_image: MapImageOption,
    map_model: MapModelOption,
    mapping: MappingOption,
    as_json: bool,
    home: HomeOption,
    map_s3: MapS3Option = None,
) -> None:
    """Show what `pier apply` would change, and change nothing."""
    stack = compile_file(file, parameter, stack_name, map_image, map_model, mapping, home, map_s3)
    the_plan = _plan(connect(home), stack)
    if as_json:
        typer.echo(json.dumps(the_plan.to_json(), indent=2))
        return
    _print_plan(the_plan, file)
    _print_outputs(stack)


def delete(
    file: FileOption,
    parameter: ParameterOption,
    stack_name: StackOption,
    map_image: MapImageOption,
    map_model: MapModelOption,
    mapping: MappingOption,
    timeout: TimeoutOption,
    home: HomeOption,
    map_s3: MapS3Option = None,
) -> None:
    """Delete every resource the file's stack created (endpoints first). The parameters and
    mappings `apply` took are accepted (and checked), so that the same options delete what
    they applied; the stack is found by its name alone."""
    try:
        _, spec_stack = _template_doc(file, [])
        _given(parameter)
        _locations(map_image, map_model, mapping, map_s3)
    except PierError as exc:
        raise fail(exc.message, 2) from None
    name = stack_name or spec_stack or _default_stack_name(file)
    bad = stack_name_error(name)
    if bad:
        raise fail(bad, 2)
    client = connect(home)
    reporter = _ConsoleReporter()
    try:
        deleted = execute.delete_stack(client, name, reporter, timeout)
    except ApplyError as exc:
        raise fail(exc.message, 1) from None
    except Exception as exc:  # botocore: the platform could not be read
        raise fail(f"cannot delete stack {name}: {error_text(exc)}", 1) from None
    finally:
        reporter.stop()
    if deleted:
        out.print(f"[green]✓[/green] stack {escape(name)} deleted ({len(deleted)} resources)")
    else:
        out.print(f"stack {escape(name)} has no resources on the platform")
