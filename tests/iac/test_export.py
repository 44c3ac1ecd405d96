"""`pier export`: CloudFormation checked by cfn-lint, Terraform parsed by python-hcl2 (and, where
the terraform binary is installed, checked by `terraform fmt` and evaluated by Terraform)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cfnlint.api
import hcl2
import pytest
import yaml

from pier.iac.export import (
    ExportError,
    resolve_model_data,
    to_cloudformation,
    to_cloudformation_yaml,
    to_terraform,
)
from pier.iac.hcl import quote
from pier.iac.source import load, read
from pier.iac.spec import EndpointSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "spec" / "diabetes.yaml"
SHADOW_EXAMPLE = ROOT / "examples" / "spec" / "diabetes-shadow.yaml"
PIER = str(Path(sys.executable).parent / "pier")
TERRAFORM = shutil.which("terraform")
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/pier-mlflow:1.0"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"

# Values that break naive quoting: quotes, template sequences, backslashes, control characters.
AWKWARD = 'say "hi" ${var.secret} %{ if x } $${kept} C:\\temp\\new \n\ttab \x01 é ☃'
EDGE_SPEC = f"""\
endpoint: edge-case-1
variants:
  - name: blue-green
    model: models:/edge@blue
    weight: 3
    instances: 2
    instance_type: ml.c5.xlarge
    environment:
      AWKWARD: {json.dumps(AWKWARD)}
      NUMBER: 7
  - name: 2nd
    model: s3://already/on/s3/model.tar.gz
    weight: 0.5
data_capture:
  destination: s3://capture-bucket/edge
  enabled: false
  sampling_percentage: 0
  capture: [output]
  kms_key_id: alias/capture
tags:
  owner: "ml team/x@y.z+1=2:é"
  cost-center: 42
"""
MODEL_DATA = {
    "models:/diabetes@champion": "s3://models/diabetes/champion/model.tar.gz",
    "challenger": "s3://models/diabetes/challenger/model.tar.gz",
}
SHADOW_DATA = {
    "champion": "s3://models/diabetes/champion/model.tar.gz",
    "models:/diabetes/3": "https://models.s3.amazonaws.com/diabetes/3/model.tar.gz",
}
EDGE_DATA = {"blue-green": "s3://models/edge/blue/model.tar.gz"}
CAPTURE = "s3://my-bucket/capture"  # the example captures to a local directory on pier


def spec_of(path_or_text: Path | str) -> EndpointSpec:
    if isinstance(path_or_text, Path):
        return load_spec(read(path_or_text))
    return load_spec(load(path_or_text, "spec.yaml"))


CASES = [
    pytest.param(EXAMPLE, MODEL_DATA, {"capture_destination": CAPTURE}, id="two-variants"),
    pytest.param(SHADOW_EXAMPLE, SHADOW_DATA, {}, id="shadow"),
    pytest.param(EDGE_SPEC, EDGE_DATA, {}, id="edge"),
]


# --------------------------------------------------------------------------- CloudFormation


def lint(text: str) -> list[str]:
    return [
        f"{m.rule.id} line {m.linenumber}: {m.message}"
        for m in cfnlint.api.lint(text, regions=["us-east-1"])
    ]


@pytest.mark.parametrize(("source", "model_data", "extra"), CASES)
@pytest.mark.parametrize("options", ["all", "none"])
def test_cloudformation_passes_cfn_lint(
    source: Path | str, model_data: dict[str, str], extra: dict[str, str], options: str
) -> None:
    given = {"image": IMAGE, "execution_role_arn": ROLE} if options == "all" else {}
    template = to_cloudformation(spec_of(source), model_data=model_data, **given, **extra)
    text = to_cloudformation_yaml(template, source="spec.yaml")
    assert lint(text) == []


def test_cloudformation_of_the_example() -> None:
    template = to_cloudformation(
        spec_of(EXAMPLE),
        model_data=MODEL_DATA,
        image=IMAGE,
        execution_role_arn=ROLE,
        capture_destination=CAPTURE,
    )
    assert list(template) == [
        "AWSTemplateFormatVersion",
        "Description",
        "Parameters",
        "Resources",
        "Outputs",
    ]
    parameters = template["Parameters"]
    assert {name: p.get("Default") for name, p in parameters.items()} == {
        "ImageUri": IMAGE,
        "ExecutionRoleArn": ROLE,
        "ModelChampionDataUrl": MODEL_DATA["models:/diabetes@champion"],
        "ModelChallengerDataUrl": MODEL_DATA["challenger"],
        "DataCaptureDestination": CAPTURE,
    }
    champion = template["Resources"]["ModelChampion"]["Properties"]
    assert champion["ExecutionRoleArn"] == {"Ref": "ExecutionRoleArn"}
    assert champion["PrimaryContainer"] == {
        "Image": {"Ref": "ImageUri"},
        "ModelDataUrl": {"Ref": "ModelChampionDataUrl"},
        "Environment": {"LOG_LEVEL": "info"},
    }
    assert "ModelName" not in champion  # CloudFormation names it, and replaces it on change
    config = template["Resources"]["EndpointConfig"]["Properties"]
    assert "EndpointConfigName" not in config
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == {"Ref": "DataCaptureDestination"}
    assert [v["InitialVariantWeight"] for v in config["ProductionVariants"]] == [90.0, 10.0]
    assert template["Resources"]["Endpoint"]["Properties"]["EndpointName"] == "diabetes-spec"
    assert template["Outputs"] == {
        "EndpointName": {
            "Description": "The endpoint to invoke",
            "Value": {"Fn::GetAtt": ["Endpoint", "EndpointName"]},
        },
        "EndpointArn": {"Description": "The endpoint's ARN", "Value": {"Ref": "Endpoint"}},
    }


def test_cloudformation_without_image_and_role_asks_for_them_at_deploy() -> None:
    template = to_cloudformation(
        spec_of(EXAMPLE), model_data=MODEL_DATA, capture_destination=CAPTURE
    )
    assert "Default" not in template["Parameters"]["ImageUri"]
    assert "Default" not in template["Parameters"]["ExecutionRoleArn"]
    assert not any(r["Type"] == "AWS::IAM::Role" for r in template["Resources"].values())


def test_cloudformation_yaml_reads_back_as_the_template() -> None:
    """Block style, CloudFormation's short forms, keys in order; pier's own template reader
    (with the short tags) reads back exactly the template."""
    template = to_cloudformation(spec_of(EDGE_SPEC), model_data=EDGE_DATA, image=IMAGE)
    text = to_cloudformation_yaml(template, source="spec.yaml")
    assert text.startswith("# Generated by `pier export` from spec.yaml.\n")
    assert "ModelName: !GetAtt ModelBlueGreen.ModelName\n" in text
    assert "ExecutionRoleArn: !Ref ExecutionRoleArn\n" in text
    assert not re.search(r"^ *(- )?\w+: [\[{]", text, re.MULTILINE)  # block style only
    assert "\n        - VariantName: blue-green\n" in text  # lists indented under their key
    back = load(text, "template.yaml", cfn_tags=True)
    assert json.loads(json.dumps(back)) == json.loads(json.dumps(template))
    environment = template["Resources"]["ModelBlueGreen"]["Properties"]["PrimaryContainer"]
    assert environment["Environment"] == {"AWKWARD": AWKWARD, "NUMBER": "7"}


def test_cloudformation_a_model_already_on_s3_needs_no_option() -> None:
    template = to_cloudformation(spec_of(EDGE_SPEC), model_data=EDGE_DATA)
    assert template["Parameters"]["Model2ndDataUrl"]["Default"] == (
        "s3://already/on/s3/model.tar.gz"
    )


# -------------------------------------------------------------------------------- Terraform


def hcl_text(raw: Any) -> str:
    """The value of a quoted HCL string literal, as python-hcl2 hands it over (quotes and
    escapes kept): decoded the way Terraform decodes it; an unescaped `${` or `%{` fails."""
    assert isinstance(raw, str), raw
    assert raw.startswith('"'), raw
    assert raw.endswith('"'), raw
    body, out, i = raw[1:-1], [], 0
    escapes = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        if body[i] == "\\":
            if body[i + 1] == "u":
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
            else:
                out.append(escapes[body[i + 1]])
                i += 2
        elif body.startswith(("$${", "%%{"), i):
            out.append(body[i + 1 : i + 3])
            i += 3
        else:
            assert not body.startswith(("${", "%{"), i), f"template sequence in {raw}"
            out.append(body[i])
            i += 1
    return "".join(out)


def blocks(parsed: dict[str, Any], kind: str) -> dict[str, Any]:
    """`resource "type" "name" {...}` → {"type.name": {...}}; `variable "x"` → {"x": {...}}."""
    out: dict[str, Any] = {}
    for entry in parsed.get(kind, []):
        for label, body in entry.items():
            if kind == "resource":
                for name, inner in body.items():
                    out[f"{hcl_text(label)}.{hcl_text(name)}"] = inner
            else:
                out[hcl_text(label)] = body
    return out


@pytest.mark.parametrize(("source", "model_data", "extra"), CASES)
def test_terraform_parses(
    source: Path | str, model_data: dict[str, str], extra: dict[str, str]
) -> None:
    spec = spec_of(source)
    parsed = hcl2.loads(to_terraform(spec, model_data=model_data, image=IMAGE, **extra))
    resources = blocks(parsed, "resource")
    models = [k for k in resources if k.startswith("aws_sagemaker_model.")]
    assert len(models) == len(spec.all_variants)
    assert {"aws_sagemaker_endpoint_configuration.this", "aws_sagemaker_endpoint.this"} <= set(
        resources
    )
    assert set(blocks(parsed, "output")) == {"endpoint_name", "endpoint_arn"}
    endpoint = resources["aws_sagemaker_endpoint.this"]
    assert hcl_text(endpoint["name"]) == spec.endpoint
    assert endpoint["endpoint_config_name"] == "${aws_sagemaker_endpoint_configuration.this.name}"
    for name in models:
        assert resources[name]["lifecycle"][0]["create_before_destroy"] is True
    config = resources["aws_sagemaker_endpoint_configuration.this"]
    assert config["lifecycle"][0]["create_before_destroy"] is True
    assert [hcl_text(v["variant_name"]) for v in config["production_variants"]] == [
        v.name for v in spec.variants
    ]


def test_terraform_of_the_example() -> None:
    text = to_terraform(
        spec_of(EXAMPLE),
        model_data=MODEL_DATA,
        image=IMAGE,
        execution_role_arn=ROLE,
        capture_destination=CAPTURE,
        source="examples/spec/diabetes.yaml",
    )
    assert text.startswith("# Generated by `pier export` from examples/spec/diabetes.yaml.\n")
    parsed = hcl2.loads(text)
    [terraform] = parsed["terraform"]
    [providers] = terraform["required_providers"]
    assert hcl_text(providers["aws"]["source"]) == "hashicorp/aws"
    variables = blocks(parsed, "variable")
    assert {name: hcl_text(v["default"]) for name, v in variables.items()} == {
        "image": IMAGE,
        "execution_role_arn": ROLE,
        "model_data_champion": MODEL_DATA["models:/diabetes@champion"],
        "model_data_challenger": MODEL_DATA["challenger"],
        "data_capture_destination": CAPTURE,
    }
    resources = blocks(parsed, "resource")
    champion = resources["aws_sagemaker_model.champion"]
    assert champion["execution_role_arn"] == "${var.execution_role_arn}"
    [container] = champion["primary_container"]
    assert container["image"] == "${var.image}"
    assert container["model_data_url"] == "${var.model_data_champion}"
    assert hcl_text(container["environment"]["LOG_LEVEL"]) == "info"
    assert "name" not in champion  # Terraform names it, so a change makes a new one
    config = resources["aws_sagemaker_endpoint_configuration.this"]
    first, second = config["production_variants"]
    assert first["model_name"] == "${aws_sagemaker_model.champion.name}"
    assert (first["initial_instance_count"], first["initial_variant_weight"]) == (2, 90)
    assert hcl_text(first["instance_type"]) == "ml.m5.large"
    assert (second["initial_instance_count"], second["initial_variant_weight"]) == (1, 10)
    [capture] = config["data_capture_config"]
    assert capture["enable_capture"] is True
    assert capture["initial_sampling_percentage"] == 100
    assert capture["destination_s3_uri"] == "${var.data_capture_destination}"
    assert [hcl_text(o["capture_mode"]) for o in capture["capture_options"]] == [
        "Input",
        "Output",
    ]
    [header] = capture["capture_content_type_header"]
    assert [hcl_text(t) for t in header["json_content_types"]] == ["application/json"]
    assert [hcl_text(t) for t in header["csv_content_types"]] == ["text/csv"]
    [local] = parsed["locals"]
    assert {k: hcl_text(v) for k, v in local["tags"].items()} == {
        "team": "ml",
        "project": "diabetes",
    }
    assert config["tags"] == "${local.tags}"
    outputs = blocks(parsed, "output")
    assert outputs["endpoint_arn"]["value"] == "${aws_sagemaker_endpoint.this.arn}"


def test_terraform_without_image_and_role_asks_for_them() -> None:
    parsed = hcl2.loads(to_terraform(spec_of(SHADOW_EXAMPLE), model_data=SHADOW_DATA))
    variables = blocks(parsed, "variable")
    assert "default" not in variables["image"]
    assert "default" not in variables["execution_role_arn"]
    config = blocks(parsed, "resource")["aws_sagemaker_endpoint_configuration.this"]
    [shadow] = config["shadow_production_variants"]
    assert hcl_text(shadow["variant_name"]) == "candidate"
    assert shadow["initial_variant_weight"] == 0.5
    assert "data_capture_config" not in config


def test_terraform_strings_round_trip() -> None:
    """Quotes, `${`, `%{`, backslashes, newlines and control characters come back unchanged."""
    parsed = hcl2.loads(to_terraform(spec_of(EDGE_SPEC), model_data=EDGE_DATA))
    resources = blocks(parsed, "resource")
    [container] = resources["aws_sagemaker_model.blue_green"]["primary_container"]
    environment = {k: hcl_text(v) for k, v in container["environment"].items()}
    assert environment == {"AWKWARD": AWKWARD, "NUMBER": "7"}
    [local] = parsed["locals"]
    tags = {hcl_text(k) if k.startswith('"') else k: hcl_text(v) for k, v in local["tags"].items()}
    assert tags == {"owner": "ml team/x@y.z+1=2:é", "cost-center": "42"}
    # a variant name starting with a digit still gives valid, distinct Terraform names
    assert "aws_sagemaker_model.variant_2nd" in resources
    config = resources["aws_sagemaker_endpoint_configuration.this"]
    [capture] = config["data_capture_config"]
    assert (capture["enable_capture"], capture["initial_sampling_percentage"]) == (False, 0)
    assert hcl_text(capture["kms_key_id"]) == "alias/capture"


# python-hcl2 8.x cannot parse an escaped `$${` or `%%{` that no `}` closes (a known family of
# its bugs with escaped interpolation); Terraform can, so those are in the Terraform test below.
@pytest.mark.parametrize(
    "value", [AWKWARD, "", "$", "$$", "${}", "$${x}", "%{ x }", "100%", "a\\", '"', "\x7f\x00"]
)
def test_quote_round_trips_through_the_parser(value: str) -> None:
    [parsed] = hcl2.loads(f"locals {{\n  x = {quote(value)}\n}}\n")["locals"]
    assert hcl_text(parsed["x"]) == value


@pytest.mark.skipif(TERRAFORM is None, reason="the terraform binary is not installed")
def test_terraform_itself_reads_the_strings_back(tmp_path: Path) -> None:
    """Terraform evaluates what `quote` wrote (outputs need no provider, so this runs offline)."""
    values = [AWKWARD, "${", "$${", "$$${x}", "%{", "%%{", "a\\", "\x7f\x01", "100%{", "é", ""]
    (tmp_path / "main.tf").write_text(
        "".join(f'output "v{i}" {{\n  value = {quote(v)}\n}}\n' for i, v in enumerate(values))
    )
    env = {"TF_CLI_CONFIG_FILE": "/dev/null", "TF_IN_AUTOMATION": "1", "PATH": "/usr/bin:/bin"}

    def terraform(*args: str) -> str:
        assert TERRAFORM is not None
        done = subprocess.run(
            [TERRAFORM, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    terraform("init", "-input=false", "-backend=false")
    terraform("apply", "-auto-approve", "-input=false")
    outputs = json.loads(terraform("output", "-json"))
    assert [outputs[f"v{i}"]["value"] for i in range(len(values))] == values


@pytest.mark.skipif(TERRAFORM is None, reason="the terraform binary is not installed")
@pytest.mark.parametrize(("source", "model_data", "extra"), CASES)
def test_terraform_is_formatted_as_terraform_fmt_wants(
    source: Path | str, model_data: dict[str, str], extra: dict[str, str], tmp_path: Path
) -> None:
    main = tmp_path / "main.tf"
    spec = spec_of(source)
    main.write_text(to_terraform(spec, model_data=model_data, execution_role_arn=ROLE, **extra))
    assert TERRAFORM is not None
    done = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-diff", str(main)],
        env={"TF_CLI_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(TERRAFORM is None, reason="the terraform binary is not installed")
def test_terraform_checks_the_variables(tmp_path: Path) -> None:
    """The variables (with their validation rules) and locals, checked by Terraform itself: the
    resources need the AWS provider, which cannot be installed offline, so they are left out."""
    text = to_terraform(
        spec_of(EXAMPLE), model_data=MODEL_DATA, image=IMAGE, capture_destination=CAPTURE
    )
    blocks = text.split("\n\n")  # the writer puts blank lines between top-level blocks only
    kept = [b for b in blocks if b.startswith(("variable ", "locals "))]
    assert len(kept) == 6
    (tmp_path / "main.tf").write_text("\n\n".join(kept) + "\n")
    env = {"TF_CLI_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}

    def terraform(*args: str) -> subprocess.CompletedProcess[str]:
        assert TERRAFORM is not None
        return subprocess.run(
            [TERRAFORM, *args, "-no-color"], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip

    assert terraform("init", "-input=false", "-backend=false").returncode == 0
    validated = terraform("validate")
    assert validated.returncode == 0, validated.stderr
    planned = terraform(
        "plan", "-input=false", "-var", "execution_role_arn=arn:aws:iam::123:user/x",
        "-var", "model_data_champion=/tmp/model",
    )  # fmt: skip
    assert planned.returncode == 1
    assert "execution_role_arn must match" in planned.stderr
    assert "model_data_champion must match" in planned.stderr
    good = terraform("plan", "-input=false", "-var", f"execution_role_arn={ROLE}")
    assert good.returncode == 0, good.stderr


# ----------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("model_data", "options", "message"),
    [
        pytest.param(
            {"champion": MODEL_DATA["challenger"]},
            {},
            "variant 'challenger' (models:/diabetes@challenger) has no S3 location for AWS: "
            "add --model-data models:/diabetes@challenger=s3://BUCKET/PATH/model.tar.gz",
            id="missing",
        ),
        pytest.param(
            {**MODEL_DATA, "models:/diabetes@champoin": "s3://b/m.tar.gz"},
            {},
            "--model-data models:/diabetes@champoin=...: no variant has this model or name",
            id="unknown-model",
        ),
        pytest.param(
            {**MODEL_DATA, "champion": "/tmp/model.tar.gz"},
            {},
            "--model-data champion: '/tmp/model.tar.gz' is not an S3 location",
            id="not-s3",
        ),
        pytest.param(
            MODEL_DATA,
            {"execution_role_arn": "arn:aws:iam::12345:user/me"},
            "--role-arn: 'arn:aws:iam::12345:user/me' is not an IAM role ARN",
            id="role",
        ),
        pytest.param(
            MODEL_DATA, {"image": "my image"}, "--image: 'my image' is not an image URI", id="image"
        ),
        pytest.param(
            MODEL_DATA,
            {"capture_destination": "file:///tmp/capture"},
            "--capture-destination: 'file:///tmp/capture' is not an S3 location",
            id="capture-destination",
        ),
    ],
)
def test_export_errors(model_data: dict[str, str], options: dict[str, str], message: str) -> None:
    spec = spec_of(EXAMPLE)
    options = {"capture_destination": CAPTURE, **options}
    with pytest.raises(ExportError) as excinfo:
        to_cloudformation(spec, model_data=model_data, **options)
    assert excinfo.value.message.startswith(message)
    with pytest.raises(ExportError) as excinfo:
        to_terraform(spec, model_data=model_data, **options)
    assert excinfo.value.message.startswith(message)


def test_a_local_capture_destination_needs_one_on_s3() -> None:
    with pytest.raises(ExportError) as excinfo:
        to_cloudformation(spec_of(EXAMPLE), model_data=MODEL_DATA)
    assert excinfo.value.message == (
        "data_capture.destination 'file:diabetes' is a directory on pier's machine: "
        "give --capture-destination s3://BUCKET/PREFIX for AWS"
    )


def test_capture_destination_needs_data_capture() -> None:
    with pytest.raises(ExportError, match="the spec has no data_capture section"):
        to_terraform(
            spec_of(SHADOW_EXAMPLE), model_data=SHADOW_DATA, capture_destination="s3://b/c"
        )


def test_model_data_by_model_uri_or_variant_name() -> None:
    spec = spec_of(EXAMPLE)
    assert resolve_model_data(spec, MODEL_DATA) == {
        "champion": MODEL_DATA["models:/diabetes@champion"],
        "challenger": MODEL_DATA["challenger"],
    }


# -------------------------------------------------------------------------------------- CLI


def pier(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIER, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def model_data_options(model_data: dict[str, str]) -> list[str]:
    return [arg for k, v in model_data.items() for arg in ("--model-data", f"{k}={v}")]


def test_cli_cloudformation_to_stdout() -> None:
    done = pier(
        "export", "-f", str(EXAMPLE), "--format", "cloudformation", "--image", IMAGE,
        "--capture-destination", CAPTURE, *model_data_options(MODEL_DATA),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert lint(done.stdout) == []
    template = yaml.load(done.stdout, Loader=yaml.BaseLoader)  # short tags stay strings
    assert template["Parameters"]["ImageUri"]["Default"] == IMAGE


def test_cli_terraform_into_a_directory(tmp_path: Path) -> None:
    done = pier(
        "export", "-f", str(EXAMPLE), "--format", "terraform", "-o", str(tmp_path),
        "--role-arn", ROLE, "--capture-destination", CAPTURE, *model_data_options(MODEL_DATA),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == f"wrote {tmp_path / 'main.tf'}"
    parsed = hcl2.loads((tmp_path / "main.tf").read_text())
    assert hcl_text(blocks(parsed, "variable")["execution_role_arn"]["default"]) == ROLE


def test_cli_cloudformation_into_a_file(tmp_path: Path) -> None:
    out = tmp_path / "stack.yaml"
    done = pier(
        "export", "-f", str(SHADOW_EXAMPLE), "--format", "cloudformation", "-o", str(out),
        *model_data_options(SHADOW_DATA),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert lint(out.read_text()) == []


@pytest.mark.parametrize(
    ("spec_text", "args", "code", "message"),
    [
        pytest.param(
            None,
            ["--model-data", "champion=s3://b/1.tar.gz", "--capture-destination", CAPTURE],
            2,
            "error: variant 'challenger' (models:/diabetes@challenger) has no S3 location",
            id="missing-model-data",
        ),
        pytest.param(
            None,
            model_data_options(MODEL_DATA),
            2,
            "error: data_capture.destination 'file:diabetes' is a directory on pier's machine",
            id="local-capture",
        ),
        pytest.param(
            None,
            ["--model-data", "champion"],
            2,
            "error: --model-data 'champion': write MODEL=S3URI",
            id="model-data-syntax",
        ),
        pytest.param(
            "endpoint: e\nvariants:\n  - name: a\n    model: m\n    weight: -1\n",
            [],
            2,
            "error: {file}:5: variants[0].weight: must be greater than or equal to 0, not -1",
            id="invalid-spec",
        ),
        pytest.param(
            "AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n",
            [],
            2,
            "error: {file}:2: Resources: the template must declare at least one resource",
            id="an-empty-template",
        ),
        pytest.param(
            "Description: x\n",
            [],
            2,
            "error: {file}: neither a pier spec",
            id="neither",
        ),
        pytest.param(
            None,
            ["-f", "/nonexistent/spec.yaml"],
            2,
            "error: /nonexistent/spec.yaml: no such file",
            id="no-file",
        ),
        pytest.param(None, ["--format", "json"], 2, "Invalid value for '--format'", id="format"),
        pytest.param(
            None,
            [*model_data_options(MODEL_DATA), "--capture-destination", CAPTURE, "-o", "/no/out"],
            1,
            "error: cannot write /no/out: No such file or directory",
            id="unwritable",
        ),
    ],
)
def test_cli_errors(
    spec_text: str | None, args: list[str], code: int, message: str, tmp_path: Path
) -> None:
    file = EXAMPLE
    if spec_text is not None:
        file = tmp_path / "spec.yaml"
        file.write_text(textwrap.dedent(spec_text))
    done = pier("export", "-f", str(file), "--format", "cloudformation", *args)
    assert done.returncode == code, done.stderr
    assert message.format(file=file) in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    if code != 2 or "Invalid value" not in message:
        assert len(done.stderr.strip().splitlines()) == 1  # one error, one line


# ------------------------------------------------------- from a template, from an endpoint

CFN_EXAMPLE = ROOT / "examples" / "cloudformation" / "endpoint.yaml"
CFN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def test_cli_export_of_a_cloudformation_template(tmp_path: Path) -> None:
    done = pier(
        "export", "-f", str(CFN_EXAMPLE), "--format", "cloudformation", "-p", "ModelVersion=2",
        "--home", str(tmp_path / "home"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert lint(done.stdout) == []
    template = yaml.load(done.stdout, Loader=yaml.BaseLoader)
    parameters = template["Parameters"]
    assert parameters["ImageUri"]["Default"] == CFN_IMAGE  # the template's own image
    (data,) = [v for k, v in parameters.items() if k.endswith("DataUrl")]
    assert data["Default"] == "s3://pier-example-models/diabetes/v2/model.tar.gz"
    assert done.stdout.startswith(f"# Generated by `pier export` from {CFN_EXAMPLE}.")


def test_cli_export_needs_a_file_or_an_endpoint(tmp_path: Path) -> None:
    for args in ([], ["-f", str(EXAMPLE), "--endpoint", "e"]):
        done = pier("export", "--format", "terraform", *args, "--home", str(tmp_path))
        assert done.returncode == 2
        assert done.stderr.strip() == (
            "error: give either --file (a spec or a template) or --endpoint NAME"
        )
    done = pier("export", "--format", "terraform", "--endpoint", "e", "--home", str(tmp_path))
    assert done.returncode == 1
    assert "pier is not running" in done.stderr


def test_spec_from_requests() -> None:
    from pier.iac.spec_of import spec_from_requests

    config = {
        "ProductionVariants": [
            {"VariantName": "a", "ModelName": "m1", "InitialInstanceCount": 2,
             "InstanceType": "ml.c5.large", "InitialVariantWeight": 3},
        ],
        "ShadowProductionVariants": [
            {"VariantName": "s", "ModelName": "m2", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": 1},
        ],
        "DataCaptureConfig": {
            "EnableCapture": True, "InitialSamplingPercentage": 50,
            "DestinationS3Uri": "s3://b/capture", "CaptureOptions": [{"CaptureMode": "Input"}],
        },
    }  # fmt: skip
    models = {
        "m1": {"PrimaryContainer": {"ModelDataUrl": "s3://b/m1.tar.gz", "Environment": {"A": 1}}},
        "m2": {"Containers": [{"ModelDataSource": {"S3DataSource": {"S3Uri": "s3://b/m2/"}}}]},
    }
    spec = spec_from_requests("shop", config, models, {"team": "x", "pier:stack": "y"})
    assert spec.variants[0].model_dump() == {
        "name": "a", "model": "s3://b/m1.tar.gz", "weight": 3.0, "instances": 2,
        "instance_type": "ml.c5.large", "environment": {"A": "1"},
    }  # fmt: skip
    assert spec.shadow is not None
    assert spec.shadow.model == "s3://b/m2/"
    assert spec.data_capture is not None
    assert spec.data_capture.capture == ["input"]
    assert spec.tags == {"team": "x"}
    in_image = {**models, "m1": {"PrimaryContainer": {"Image": "my-model:1"}}}
    with pytest.raises(ExportError) as excinfo:
        spec_from_requests("shop", config, in_image)
    assert excinfo.value.message == (
        "variant a: model m1 lives inside its image my-model:1 (no ModelDataUrl); a pier spec "
        "names a model's data, not an image"
    )
    two = {**models, "m1": {"Containers": [{"ModelDataUrl": "s3://x"}, {"ModelDataUrl": "s3://y"}]}}
    with pytest.raises(ExportError, match="model m1 has 2 containers"):
        spec_from_requests("shop", config, two)
