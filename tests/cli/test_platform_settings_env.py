"""`pier up -d` hands its settings to the detached platform as PIER_* variables."""

from __future__ import annotations

from pier.cli.platform_commands import settings_env
from pier.settings import PlatformSettings


def test_a_secret_setting_is_handed_on_as_itself_not_its_mask() -> None:
    env = settings_env(PlatformSettings(metrics_token="s3cr3t-t0ken", capture_durable=True))
    assert env["PIER_METRICS_TOKEN"] == "s3cr3t-t0ken"
    assert env["PIER_CAPTURE_DURABLE"] == "true"
    assert PlatformSettings.model_validate({}).metrics_token is None
