"""The pier spec: what it accepts, how each mistake is named (file:line: field), and the
CloudFormation template it compiles to for pier."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pier.iac.source import SourceError, load, read, where
from pier.iac.spec import (
    DEFAULT_INSTANCE_TYPE,
    is_spec,
    load_spec,
    model_logical_ids,
    to_local_template,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "spec" / "diabetes.yaml"
SHADOW_EXAMPLE = ROOT / "examples" / "spec" / "diabetes-shadow.yaml"


def doc(text: str, file: str = "spec.yaml") -> Any:
    return load(textwrap.dedent(text), file)


def error_of(text: str) -> str:
    with pytest.raises(SourceError) as excinfo:
        load_spec(doc(text))
    return excinfo.value.message


MINIMAL = """\
endpoint: diabetes
variants:
  - name: champion
    model: models:/diabetes@champion
"""

ELEVEN_VARIANTS = "endpoint: e\nvariants:\n" + "".join(
    f"  - {{name: v{i}, model: m}}\n" for i in range(11)
)


# ------------------------------------------------------------------------------ valid specs


def test_the_example_spec() -> None:
    spec = load_spec(read(EXAMPLE))
    assert spec.endpoint == "diabetes-spec"
    assert [(v.name, v.model, v.weight, v.instances) for v in spec.variants] == [
        ("champion", "models:/diabetes@champion", 90.0, 2),
        ("challenger", "models:/diabetes@challenger", 10.0, 1),
    ]
    assert spec.variants[0].environment == {"LOG_LEVEL": "info"}
    assert spec.data_capture is not None
    assert spec.data_capture.destination == "file:diabetes"
    assert spec.tags == {"team": "ml", "project": "diabetes"}
    assert spec.shadow is None


def test_the_shadow_example() -> None:
    spec = load_spec(read(SHADOW_EXAMPLE))
    assert spec.shadow is not None
    assert (spec.shadow.name, spec.shadow.model, spec.shadow.weight) == (
        "candidate",
        "models:/diabetes/3",
        0.5,
    )


def test_defaults() -> None:
    spec = load_spec(doc(MINIMAL + "data_capture: {destination: 's3://b/c'}\n"))
    [variant] = spec.variants
    assert (variant.weight, variant.instances, variant.instance_type, variant.environment) == (
        1.0,
        1,
        DEFAULT_INSTANCE_TYPE,
        {},
    )
    assert spec.kind == "pier/Endpoint"
    assert spec.tags == {}
    capture = spec.data_capture
    assert capture is not None
    assert (capture.enabled, capture.sampling_percentage, capture.capture) == (
        True,
        100,
        ["input", "output"],
    )


def test_environment_and_tags_take_yaml_scalars_as_written() -> None:
    spec = load_spec(
        doc(
            MINIMAL
            + "    environment: {WORKERS: 4, DEBUG: true, RATIO: 0.5, NAME: x}\n"
            + "tags: {release: 3, 'cost:center': 'a b', on: false}\n"
        )
    )
    assert spec.variants[0].environment == {
        "WORKERS": "4",
        "DEBUG": "true",
        "RATIO": "0.5",
        "NAME": "x",
    }
    assert spec.tags == {"release": "3", "cost:center": "a b", "on": "false"}


def test_weights_may_be_integers_or_fractions_and_zero() -> None:
    spec = load_spec(
        doc("""\
            endpoint: e
            variants:
              - {name: a, model: m, weight: 0}
              - {name: b, model: m, weight: 0.25}
            """)
    )
    assert [v.weight for v in spec.variants] == [0.0, 0.25]


def test_a_63_character_name_is_valid() -> None:
    name = "a" + "-b" * 31
    assert len(name) == 63
    assert load_spec(doc(MINIMAL.replace("diabetes\n", f"{name}\n", 1))).endpoint == name


def test_is_spec() -> None:
    assert is_spec(read(EXAMPLE))
    assert is_spec(doc(MINIMAL))
    assert is_spec(doc("kind: pier/Endpoint\n"))  # then load_spec names what is missing
    assert is_spec(doc("kind: pier/Something\nendpoint: e\n"))
    template = "AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n"
    assert not is_spec(doc(template))
    assert not is_spec(doc("Resources: {}\nendpoint: x\n"))
    assert not is_spec(doc("- endpoint: x\n"))
    assert not is_spec(doc("just text\n"))


# ------------------------------------------------------------------------- invalid specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            MINIMAL + "    weight: '90'\n",
            "spec.yaml:5: variants[0].weight: must be a number, not '90'",
            id="weight-string",
        ),
        pytest.param(
            MINIMAL + "    weight: -1\n",
            "spec.yaml:5: variants[0].weight: must be greater than or equal to 0, not -1",
            id="weight-negative",
        ),
        pytest.param(
            MINIMAL + "    weight: .nan\n",
            "spec.yaml:5: variants[0].weight: must be a finite number, not nan",
            id="weight-nan",
        ),
        pytest.param(
            MINIMAL + "    instances: 0\n",
            "spec.yaml:5: variants[0].instances: must be greater than or equal to 1, not 0",
            id="instances-zero",
        ),
        pytest.param(
            MINIMAL + "    instances: true\n",
            "spec.yaml:5: variants[0].instances: must be a whole number, not True",
            id="instances-bool",
        ),
        pytest.param(
            MINIMAL + "    instances: 1.5\n",
            "spec.yaml:5: variants[0].instances: must be a whole number, not 1.5",
            id="instances-float",
        ),
        pytest.param(
            MINIMAL + "    wieght: 3\n",
            "spec.yaml:5: variants[0].wieght: unknown field 'wieght'; did you mean 'weight'?",
            id="unknown-key-close",
        ),
        pytest.param(
            "# comment\n" + MINIMAL + "replicas: 3\n",
            "spec.yaml:6: replicas: unknown field 'replicas'; expected one of: kind, endpoint, "
            "description, variants, shadow, data_capture, deployment, tags",
            id="unknown-key-top",
        ),
        pytest.param(
            MINIMAL + "data_capture:\n  destination: s3://b/c\n  sampling: 5\n",
            "spec.yaml:7: data_capture.sampling: unknown field 'sampling'; "
            "did you mean 'sampling_percentage'?",
            id="unknown-key-nested",
        ),
        pytest.param(
            MINIMAL.replace("endpoint: diabetes", "endpoint: diabetes_v2"),
            "spec.yaml:1: endpoint: 'diabetes_v2' is not a SageMaker name: 1 to 63 letters, "
            "digits and hyphens, starting and ending with a letter or digit",
            id="name-underscore",
        ),
        pytest.param(
            MINIMAL.replace("name: champion", "name: -champion"),
            "spec.yaml:3: variants[0].name: '-champion' is not a SageMaker name",
            id="name-leading-hyphen",
        ),
        pytest.param(
            MINIMAL.replace("endpoint: diabetes", "endpoint: " + "a" * 64),
            "spec.yaml:1: endpoint: '" + "a" * 64 + "' is not a SageMaker name",
            id="name-64",
        ),
        pytest.param(
            MINIMAL.replace("endpoint: diabetes", "endpoint: 42"),
            "spec.yaml:1: endpoint: must be a string, not 42",
            id="name-number",
        ),
        pytest.param(
            MINIMAL + "    instance_type: ml.m5.lage\n",
            "spec.yaml:5: variants[0].instance_type: 'ml.m5.lage' is not a SageMaker instance "
            "type; did you mean 'ml.m5.large'?",
            id="instance-type",
        ),
        pytest.param(
            MINIMAL + "    environment:\n      LOG-LEVEL: info\n",
            "spec.yaml:6: variants[0].environment.LOG-LEVEL: 'LOG-LEVEL' is not an environment "
            "variable name",
            id="env-key",
        ),
        pytest.param(
            MINIMAL + "    environment:\n      A: [1]\n",
            "spec.yaml:6: variants[0].environment.A: must be a string, not a list",
            id="env-value",
        ),
        pytest.param(
            MINIMAL + "tags:\n  aws:team: ml\n",
            "spec.yaml:6: tags.aws:team: the aws: prefix is reserved for AWS's own tags",
            id="tag-aws-prefix",
        ),
        pytest.param(
            MINIMAL + "tags:\n  pier:stack: other\n",
            "spec.yaml:6: tags.pier:stack: the pier: prefix is reserved for the tags pier keeps "
            "its stacks in",
            id="tag-pier-prefix",
        ),
        pytest.param(
            MINIMAL + "tags:\n" + "".join(f"  t{i}: v\n" for i in range(48)),
            "spec.yaml:5: tags: at most 47 tags, not 48 (SageMaker allows 50 per resource and "
            "pier keeps 3 of its own)",
            id="too-many-tags",
        ),
        pytest.param(
            MINIMAL + "tags:\n  team: ml#1\n",
            "spec.yaml:6: tags.team: 'ml#1': tags hold only letters, digits, spaces",
            id="tag-character",
        ),
        pytest.param(
            "endpoint: e\nvariants:\n  - name: a\n    weight: 1\n",
            "spec.yaml:3: variants[0].model: required, but missing",
            id="model-missing",
        ),
        pytest.param(
            "endpoint: e\n",
            "spec.yaml:1: variants: required, but missing",
            id="variants-missing",
        ),
        pytest.param(
            "endpoint: e\nvariants: []\n",
            "spec.yaml:2: variants: needs at least 1 item",
            id="variants-empty",
        ),
        pytest.param(
            "endpoint: e\nvariants:\n  name: a\n  model: m\n",
            "spec.yaml:2: variants: must be a list, not a mapping",
            id="variants-mapping",
        ),
        pytest.param(
            "endpoint: e\nvariants:\n  - champion\n",
            "spec.yaml:3: variants[0]: must be a mapping, not 'champion'",
            id="variant-scalar",
        ),
        pytest.param(
            ELEVEN_VARIANTS,
            "spec.yaml:2: variants: takes at most 10 items, not 11",
            id="variants-eleven",
        ),
        pytest.param(
            "kind: pier/Stack\n" + MINIMAL,
            "spec.yaml:1: kind: must be 'pier/Endpoint', not 'pier/Stack'",
            id="kind",
        ),
        pytest.param(
            MINIMAL + "data_capture: {destination: s3://b/c, sampling_percentage: 101}\n",
            "spec.yaml:5: data_capture.sampling_percentage: must be less than or equal to 100, "
            "not 101",
            id="sampling-high",
        ),
        pytest.param(
            MINIMAL + "data_capture: {destination: s3://b/c, sampling_percentage: -1}\n",
            "spec.yaml:5: data_capture.sampling_percentage: must be greater than or equal to 0",
            id="sampling-negative",
        ),
        pytest.param(
            MINIMAL + "data_capture: {destination: /tmp/capture}\n",
            "spec.yaml:5: data_capture.destination: '/tmp/capture' is not a capture destination: "
            "s3://bucket/prefix, or a local directory file:///absolute/dir or file:dir",
            id="capture-destination",
        ),
        pytest.param(
            MINIMAL + "data_capture: {destination: 'file:../up'}\n",
            "spec.yaml:5: data_capture.destination: 'file:../up' is not a capture destination",
            id="capture-destination-dots",
        ),
        pytest.param(
            MINIMAL + "data_capture:\n  destination: s3://b/c\n  capture: [input, inputs]\n",
            "spec.yaml:7: data_capture.capture[1]: must be 'input' or 'output', not 'inputs'",
            id="capture-mode",
        ),
        pytest.param(
            MINIMAL + "data_capture:\n  destination: s3://b/c\n  capture: [output, output]\n",
            "spec.yaml:7: data_capture.capture: input and output may each appear once",
            id="capture-twice",
        ),
        pytest.param(
            MINIMAL + "data_capture:\n  destination: s3://b/c\n  json_content_types: [json]\n",
            "spec.yaml:7: data_capture.json_content_types[0]: 'json' is not a content type",
            id="content-type",
        ),
        pytest.param(
            MINIMAL + "data_capture: {}\n",
            "spec.yaml:5: data_capture.destination: required, but missing",
            id="capture-destination-missing",
        ),
        pytest.param(
            """\
            endpoint: e
            variants:
              - {name: a, model: m, weight: 0}
              - {name: b, model: m, weight: 0.0}
            """,
            "spec.yaml:2: variants: at least one variant needs a weight above 0",
            id="all-weights-zero",
        ),
        pytest.param(
            """\
            endpoint: e
            variants:
              - name: a
                model: m
              - name: a
                model: n
            """,
            "spec.yaml:5: variants[1].name: the variant name 'a' is already used by variants[0]",
            id="duplicate-variant",
        ),
        pytest.param(
            MINIMAL + "shadow:\n  name: champion\n  model: m\n",
            "spec.yaml:6: shadow.name: the variant name 'champion' is already used by variants[0]",
            id="shadow-same-name",
        ),
        pytest.param(
            MINIMAL + "  - {name: b, model: m}\nshadow:\n  name: s\n  model: m\n",
            "spec.yaml:6: shadow: SageMaker runs a shadow variant beside exactly one production "
            "variant; this spec has 2",
            id="shadow-two-variants",
        ),
        pytest.param(
            MINIMAL + "endpoint: other\n",
            "spec.yaml:5: duplicate key 'endpoint' (first at line 1); YAML keeps only one of them",
            id="duplicate-key",
        ),
        pytest.param(
            MINIMAL + "    environment: {A: 1, A: 2}\n",
            "spec.yaml:5: duplicate key 'A' (first at line 5)",
            id="duplicate-key-flow",
        ),
        pytest.param(
            MINIMAL + "    environment: {A: !Ref X}\n",
            "spec.yaml:5: unknown tag !Ref (CloudFormation tags belong in templates)",
            id="cfn-tag",
        ),
        pytest.param(
            "- endpoint: e\n",
            "spec.yaml:1: a pier spec is a mapping with `endpoint:` and `variants:`, not a list",
            id="not-a-mapping",
        ),
        pytest.param(
            "endpoint: e\nvariants:\n  - name: a\n    model: m\n  weight: 3\n",
            "spec.yaml:5: not valid YAML",
            id="bad-indentation",
        ),
    ],
)
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    assert error_of(text).startswith(expected)


def test_every_error_is_reported_in_line_order() -> None:
    message = error_of("""\
        endpoint: e_1
        variants:
          - name: a
            model: 3
            weight: -2
          - name: b
        tags: {aws:x: y}
        """)
    assert message.splitlines() == [
        "spec.yaml:1: endpoint: 'e_1' is not a SageMaker name: 1 to 63 letters, digits and "
        "hyphens, starting and ending with a letter or digit",
        "spec.yaml:4: variants[0].model: must be a string, not 3",
        "spec.yaml:5: variants[0].weight: must be greater than or equal to 0, not -2",
        "spec.yaml:6: variants[1].model: required, but missing",
        "spec.yaml:7: tags.aws:x: the aws: prefix is reserved for AWS's own tags",
    ]


def test_many_errors_are_cut_short() -> None:
    variants = "".join(f"  - {{name: v{i}, model: {i}}}\n" for i in range(10))
    lines = error_of("endpoint: e_\nvariants:\n" + variants).splitlines()
    assert len(lines) == 11
    assert lines[0].startswith("spec.yaml:1: endpoint:")
    assert lines[-1] == "... and 1 more"


def test_errors_name_the_file_they_were_read_from(tmp_path: Path) -> None:
    path = tmp_path / "my spec.yaml"
    path.write_text(MINIMAL + "    weight: -1\n")
    with pytest.raises(SourceError, match=r"^.*my spec\.yaml:5: variants\[0\]\.weight: "):
        load_spec(read(path))


# ----------------------------------------------------------------------- the local template


def test_local_template_of_the_example() -> None:
    template = to_local_template(read(EXAMPLE))
    assert list(template) == ["AWSTemplateFormatVersion", "Description", "Resources", "Outputs"]
    resources = template["Resources"]
    assert {k: r["Type"] for k, r in resources.items()} == {
        "ModelChampion": "AWS::SageMaker::Model",
        "ModelChallenger": "AWS::SageMaker::Model",
        "EndpointConfig": "AWS::SageMaker::EndpointConfig",
        "Endpoint": "AWS::SageMaker::Endpoint",
    }
    tags = [{"Key": "team", "Value": "ml"}, {"Key": "project", "Value": "diabetes"}]
    assert resources["ModelChampion"]["Properties"] == {
        "PrimaryContainer": {
            "ModelDataUrl": "models:/diabetes@champion",
            "Environment": {"LOG_LEVEL": "info"},
        },
        "Tags": tags,
    }  # no ModelName: a changed model is replaced under a new generated name
    assert resources["ModelChallenger"]["Properties"]["PrimaryContainer"] == {
        "ModelDataUrl": "models:/diabetes@challenger"
    }
    assert resources["EndpointConfig"]["Properties"] == {
        "ProductionVariants": [
            {
                "VariantName": "champion",
                "ModelName": {"Fn::GetAtt": ["ModelChampion", "ModelName"]},
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 90.0,
            },
            {
                "VariantName": "challenger",
                "ModelName": {"Fn::GetAtt": ["ModelChallenger", "ModelName"]},
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 10.0,
            },
        ],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "file:diabetes",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        },
        "Tags": tags,
    }
    assert resources["Endpoint"]["Properties"] == {
        "EndpointName": "diabetes-spec",
        "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]},
        "Tags": tags,
    }
    assert template["Outputs"]["EndpointArn"]["Value"] == {"Ref": "Endpoint"}
    assert template["Outputs"]["EndpointName"]["Value"] == {
        "Fn::GetAtt": ["Endpoint", "EndpointName"]
    }


def test_local_template_with_a_shadow_and_without_tags() -> None:
    template = to_local_template(
        doc(MINIMAL + "shadow:\n  name: candidate\n  model: models:/diabetes/3\n  weight: 0.5\n")
    )
    resources = template["Resources"]
    config = resources["EndpointConfig"]["Properties"]
    assert config["ShadowProductionVariants"] == [
        {
            "VariantName": "candidate",
            "ModelName": {"Fn::GetAtt": ["ModelCandidate", "ModelName"]},
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": 0.5,
        }
    ]
    assert "DataCaptureConfig" not in config
    assert all("Tags" not in r["Properties"] for r in resources.values())


def test_local_template_is_the_same_every_time() -> None:
    assert to_local_template(read(EXAMPLE)) == to_local_template(read(EXAMPLE))


def test_local_template_refuses_an_invalid_spec() -> None:
    with pytest.raises(SourceError, match=r"^spec\.yaml:5: variants\[0\]\.weight"):
        to_local_template(doc(MINIMAL + "    weight: x\n"))


def test_local_model_paths_are_relative_to_the_spec(tmp_path: Path) -> None:
    spec_dir = tmp_path / "deploy"
    spec_dir.mkdir()
    path = spec_dir / "spec.yaml"
    path.write_text(
        textwrap.dedent("""\
            endpoint: e
            variants:
              - {name: a, model: ./models/a}
              - {name: b, model: ../shared/b}
              - {name: c, model: /abs/c}
              - {name: d, model: "file:///abs/d"}
              - {name: f, model: "runs:/0123/model"}
              - {name: g, model: "s3://bucket/g.tar.gz"}
              - {name: h, model: "~/h"}
            """)
    )
    template = to_local_template(read(path))
    urls = {
        r["Properties"]["PrimaryContainer"]["ModelDataUrl"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SageMaker::Model"
    }
    assert urls == {
        str(spec_dir / "models" / "a"),
        str(tmp_path / "shared" / "b"),
        "/abs/c",
        "file:///abs/d",
        "runs:/0123/model",
        "s3://bucket/g.tar.gz",
        os.path.expanduser("~/h"),
    }


def test_logical_ids_stay_unique() -> None:
    spec = load_spec(
        doc("""\
            endpoint: e
            variants:
              - {name: a-b, model: m}
              - {name: aB, model: m}
              - {name: 1st, model: m}
              - {name: a--b, model: m}
            """)
    )
    assert model_logical_ids(spec) == {
        "a-b": "ModelAB",
        "aB": "ModelAB2",
        "1st": "Model1st",
        "a--b": "ModelAB3",
    }


def test_local_template_lines_are_the_specs() -> None:
    """The CloudFormation engine reports `where` a property is: that is the spec's line."""
    template = to_local_template(read(EXAMPLE))
    lines = EXAMPLE.read_text().splitlines()

    def line_of(container: Any, key: str | int) -> str:
        place = where(container, key)
        assert place.startswith(f"{EXAMPLE}:")
        return lines[int(place.rpartition(":")[2]) - 1].strip()

    resources = template["Resources"]
    variants = resources["EndpointConfig"]["Properties"]["ProductionVariants"]
    assert line_of(variants[1], "InitialVariantWeight") == "weight: 10"
    assert line_of(variants[0], "InitialInstanceCount") == "instances: 2"
    assert line_of(variants[1], "InitialInstanceCount") == "- name: challenger"  # a default
    container = resources["ModelChallenger"]["Properties"]["PrimaryContainer"]
    assert line_of(container, "ModelDataUrl") == "model: models:/diabetes@challenger"
    environment = resources["ModelChampion"]["Properties"]["PrimaryContainer"]["Environment"]
    assert line_of(environment, "LOG_LEVEL") == "LOG_LEVEL: info"
    capture = resources["EndpointConfig"]["Properties"]["DataCaptureConfig"]
    assert line_of(capture, "DestinationS3Uri") == "destination: file:diabetes"
    assert line_of(resources["Endpoint"]["Properties"]["Tags"], 1) == "project: diabetes"
    assert line_of(resources["Endpoint"]["Properties"], "EndpointName") == "endpoint: diabetes-spec"


@pytest.mark.parametrize("example", [EXAMPLE, SHADOW_EXAMPLE], ids=["variants", "shadow"])
def test_local_template_compiles_as_a_cloudformation_stack(example: Path) -> None:
    """The CloudFormation engine takes the template as it takes a hand-written one: generated
    names for Model and EndpointConfig (replaced when they change), the endpoint's own name."""
    from pier.iac.cloudformation.intrinsics import Pseudo
    from pier.iac.cloudformation.stack import compile_stack
    from pier.iac.cloudformation.template import parse

    spec = load_spec(read(example))
    template = to_local_template(read(example))
    stack = compile_stack(
        parse(template, str(example)), {}, Pseudo("us-east-1", "000000000000", spec.endpoint)
    )
    names = {r.logical_id: (r.name, r.custom_name) for r in stack.resources}
    assert names["Endpoint"] == (spec.endpoint, True)
    for logical_id in model_logical_ids(spec).values():
        assert names[logical_id][0].startswith(f"{spec.endpoint}-{logical_id}-")
        assert not names[logical_id][1]
    assert not names["EndpointConfig"][1]
    assert {o.name: o.value for o in stack.outputs}["EndpointName"] == spec.endpoint
    again = compile_stack(
        parse(to_local_template(read(example)), str(example)),
        {},
        Pseudo("us-east-1", "000000000000", spec.endpoint),
    )
    assert [r.name for r in again.resources] == [r.name for r in stack.resources]


# ------------------------------------------------------------------------------ docs/spec.md

DOCS = ROOT / "docs" / "spec.md"


def fenced(kind: str) -> list[str]:
    """The ```kind blocks of docs/spec.md."""
    parts = DOCS.read_text().split(f"```{kind}\n")[1:]
    return [part.split("```", 1)[0] for part in parts]


def without_comments(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))


def test_the_docs_show_the_example_files() -> None:
    blocks = fenced("yaml")
    assert without_comments(EXAMPLE.read_text()) in blocks
    assert without_comments(SHADOW_EXAMPLE.read_text()) in blocks


def test_the_docs_error_example_is_what_pier_says(tmp_path: Path) -> None:
    [shown] = [b for b in fenced("text") if b.startswith("$ pier apply -f diabetes.yaml\n")]
    bad = EXAMPLE.read_text()
    for old, new in [
        ("    weight: 90\n", "    wieght: 90\n"),
        ("    weight: 10\n", "    weight: -10\n"),
        ("  sampling_percentage: 100\n", "  sampling_percentage: 101\n"),
    ]:
        bad = bad.replace(old, new)
    with pytest.raises(SourceError) as excinfo:
        load_spec(load(bad, "diabetes.yaml"))
    assert shown.splitlines()[1:] == ("error: " + excinfo.value.message).splitlines()
