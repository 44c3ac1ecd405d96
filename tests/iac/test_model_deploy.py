"""pier.iac.model_deploy's pure parts: names from model URIs, weights from the command line,
and the MLflow plugin's config keys and target URIs (pier.mlflow_plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pier.iac.model_deploy import (
    DeployError,
    Mode,
    check_endpoint_name,
    default_variant,
    parse_weights,
    registered_name,
)
from pier.mlflow_plugin.config import ConfigError, deploy_request
from pier.mlflow_plugin.target import TargetError, resolve


@pytest.mark.parametrize(
    ("uri", "variant", "name"),
    [
        ("models:/diabetes/3", "diabetes-v3", "diabetes"),
        ("models:/diabetes/3/", "diabetes-v3", "diabetes"),
        ("models:/diabetes@champion", "diabetes-champion", "diabetes"),
        ("runs:/0a1b/model", "model", None),
        ("/tmp/models/my_model", "my-model", None),
    ],
)
def test_names_from_model_uris(uri: str, variant: str, name: str | None) -> None:
    assert default_variant(uri) == variant
    assert registered_name(uri) == name


def test_a_long_registered_name_makes_a_variant_of_63_characters_at_most() -> None:
    variant = default_variant(f"models:/{'m' * 80}/12")
    assert len(variant) <= 63
    assert variant.endswith("-v12")


def test_endpoint_names_follow_sagemakers_pattern() -> None:
    check_endpoint_name("diabetes-2")
    for bad in ("", "-x", "x-", "a_b", "x" * 64):
        with pytest.raises(DeployError, match="is not an endpoint name"):
            check_endpoint_name(bad)


def test_weights_from_pairs() -> None:
    assert parse_weights(["champion=90", "challenger=10.5"]) == {
        "champion": 90.0,
        "challenger": 10.5,
    }
    for pairs, message in [
        (["champion"], "expected VARIANT=WEIGHT"),
        (["=1"], "expected VARIANT=WEIGHT"),
        (["a=nan"], "a weight is a finite number"),
        (["a=inf"], "a weight is a finite number"),
        (["a=1", "a=2"], "variant a is given twice"),
        ([], "give at least one"),
    ]:
        with pytest.raises(DeployError, match=message):
            parse_weights(pairs)


def test_config_is_read_as_mlflows_sagemaker_target_reads_it() -> None:
    request = deploy_request(
        "shop",
        "models:/shop/1",
        {"instance_count": "2", "synchronous": "False", "env": '{"A": "1"}', "mode": "add"},
        (Mode.REPLACE, Mode.ADD),
    )
    assert request.instance_count == 2
    assert request.synchronous is False
    assert request.env == {"A": "1"}
    assert request.mode is Mode.ADD
    assert request.instance_type == "ml.m5.large"
    with pytest.raises(ConfigError, match="config instance_count=0: at least 1"):
        deploy_request("shop", "models:/shop/1", {"instance_count": 0}, (Mode.CREATE,))


def test_target_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIER_HOME", str(tmp_path))
    target = resolve("pier:/http://127.0.0.1:9/")
    assert target.url == "http://127.0.0.1:9"
    assert target.access_key is None
    for bad in ("pier:/127.0.0.1:9", "pier:/ftp://x", "sagemaker"):
        with pytest.raises(TargetError):
            resolve(bad)
    with pytest.raises(TargetError, match="pier is not running"):
        resolve("pier")
