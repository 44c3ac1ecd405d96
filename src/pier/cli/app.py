"""The whole `pier` command line: the root (pier.cli.root: --version, serve) and every other
command, each module light at import: heavy libraries load inside the command."""

from __future__ import annotations

from pier.cli import (
    ab_command,
    alarms_command,
    audit_command,
    build_command,
    compare_command,
    console_command,
    delete_command,
    deploy_command,
    endpoint_commands,
    export_command,
    gateway_command,
    ground_truth_command,
    iac_commands,
    keys_command,
    logs_command,
    metrics_command,
    monitor_commands,
    platform_commands,
    quickstart_command,
    rollout_command,
    users_command,
)
from pier.cli.root import new_root

app = new_root()

app.command()(quickstart_command.quickstart)
app.command()(platform_commands.up)
app.command()(platform_commands.down)
app.command()(platform_commands.status)
app.command()(platform_commands.env)
app.command("console-url")(console_command.console_url)
app.command()(endpoint_commands.endpoints)
app.command()(endpoint_commands.describe)
app.command()(endpoint_commands.invoke)
app.command()(logs_command.logs)
app.command()(build_command.build)
app.command()(metrics_command.metrics)
app.command("delete-endpoint")(delete_command.delete_endpoint)
app.command()(iac_commands.apply)
app.command()(iac_commands.plan)
app.command()(iac_commands.delete)
app.command()(export_command.export)
app.command()(alarms_command.alarms)
app.add_typer(ground_truth_command.ground_truth_app, name="ground-truth")
app.command()(ground_truth_command.quality)
app.add_typer(monitor_commands.monitor_app, name="monitor")
app.add_typer(users_command.users_app, name="users")
app.command()(audit_command.audit)
app.add_typer(keys_command.keys_app, name="keys")
app.add_typer(gateway_command.gateway_app, name="gateway")
app.command()(compare_command.compare)
app.command()(ab_command.ab)
app.command()(rollout_command.rollout)
app.command()(deploy_command.deploy)
app.command()(deploy_command.weights)
