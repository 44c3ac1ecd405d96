"""pier.iac.source: deploy files with the file and line of every key and item."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pier.iac.source import Located, LocatedList, SourceError, load, read, where

TEMPLATE = """\
AWSTemplateFormatVersion: 2010-09-09
Resources:
  Model:
    Type: AWS::SageMaker::Model
    Properties:
      ModelName: !Ref Name
      PrimaryContainer:
        Image: !Sub "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/x:1"
  Config:
    Type: AWS::SageMaker::EndpointConfig
    DependsOn: [Model]
    Properties:
      ProductionVariants:
        - VariantName: !GetAtt Model.ModelName
          ModelName: !GetAtt [Model, ModelName]
          InitialVariantWeight: 0.5
          InitialInstanceCount: 1
"""


def test_lines_of_keys_and_items() -> None:
    doc = load(TEMPLATE, "t.yaml", cfn_tags=True)
    assert isinstance(doc, Located)
    assert (doc.file, doc.line) == ("t.yaml", 1)
    assert where(doc, "Resources") == "t.yaml:2"
    model = doc["Resources"]["Model"]
    assert where(doc["Resources"], "Config") == "t.yaml:9"
    assert where(model["Properties"], "PrimaryContainer") == "t.yaml:7"
    variants = doc["Resources"]["Config"]["Properties"]["ProductionVariants"]
    assert isinstance(variants, LocatedList)
    assert where(variants, 0) == "t.yaml:14"
    assert where(variants[0], "InitialVariantWeight") == "t.yaml:16"
    assert where(doc["Resources"]["Config"], "DependsOn") == "t.yaml:11"


def test_where_falls_back_to_the_container_and_the_file() -> None:
    doc = load("a:\n  b: 1\n", "f.yaml")
    assert where(doc["a"], "missing") == "f.yaml:2"
    assert where(doc["a"]) == "f.yaml:2"
    assert where({"plain": "dict"}, "plain") == "?"
    assert where(LocatedList(), 3) == "?"


def test_scalars_as_yaml_reads_them_but_timestamps_stay_strings() -> None:
    doc = load("a: 1\nb: 0.5\nc: true\nd: '1'\ne: 2010-09-09\nf: null\n", "f.yaml")
    assert doc == {"a": 1, "b": 0.5, "c": True, "d": "1", "e": "2010-09-09", "f": None}


def test_short_tags_become_long_forms() -> None:
    doc = load(TEMPLATE, "t.yaml", cfn_tags=True)
    model = doc["Resources"]["Model"]["Properties"]
    assert model["ModelName"] == {"Ref": "Name"}
    assert model["PrimaryContainer"]["Image"] == {
        "Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/x:1"
    }
    variant = doc["Resources"]["Config"]["Properties"]["ProductionVariants"][0]
    assert variant["VariantName"] == {"Fn::GetAtt": ["Model", "ModelName"]}
    assert variant["ModelName"] == {"Fn::GetAtt": ["Model", "ModelName"]}
    assert where(variant["ModelName"], "Fn::GetAtt") == "t.yaml:15"


def test_tags_with_sequences_and_mappings() -> None:
    doc = load(
        "a: !If [Cond, {x: 1}, !Ref AWS::NoValue]\nb: !Sub\n  - '${X}'\n  - X: !Ref Y\n",
        "t.yaml",
        cfn_tags=True,
    )
    assert doc["a"] == {"Fn::If": ["Cond", {"x": 1}, {"Ref": "AWS::NoValue"}]}
    assert doc["b"] == {"Fn::Sub": ["${X}", {"X": {"Ref": "Y"}}]}
    assert isinstance(doc["a"]["Fn::If"], LocatedList)


def test_getatt_short_form_needs_a_dot() -> None:
    with pytest.raises(
        SourceError, match=r"t\.yaml:2: !GetAtt 'Model' must be Resource\.Attribute"
    ):
        load("a: 1\nb: !GetAtt Model\n", "t.yaml", cfn_tags=True)


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    text = "Resources:\n  Model:\n    Type: A\n  Model:\n    Type: B\n"
    with pytest.raises(SourceError) as excinfo:
        load(text, "t.yaml", cfn_tags=True)
    assert excinfo.value.message == (
        "t.yaml:4: duplicate key 'Model' (first at line 2); YAML keeps only one of them"
    )


def test_tags_outside_templates_and_unknown_tags() -> None:
    with pytest.raises(SourceError, match=r"f\.yaml:1: unknown tag !Ref \(CloudFormation tags"):
        load("a: !Ref X\n", "f.yaml")
    with pytest.raises(SourceError, match=r"f\.yaml:2: unknown tag !Bogus$"):
        load("a: 1\nb: !Bogus X\n", "f.yaml", cfn_tags=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "f.yaml: the file is empty"),
        ("a: 1\n---\nb: 2\n", "f.yaml: holds 2 YAML documents; put one per file"),
        ("a: [1, 2\n", "f.yaml:2: not valid YAML"),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", "f.yaml:3: YAML merge keys (<<) are not supported"),
        ("? [a, b]\n: 1\n", "f.yaml:1: a key must be a plain string"),
    ],
)
def test_unusable_documents(text: str, message: str) -> None:
    with pytest.raises(SourceError) as excinfo:
        load(text, "f.yaml")
    assert excinfo.value.message.startswith(message)


def test_json_templates_load_through_the_same_function(tmp_path: Path) -> None:
    template = {
        "Resources": {
            "Model": {
                "Type": "AWS::SageMaker::Model",
                "Properties": {"ModelName": {"Fn::Join": ["-", ["a", {"Ref": "B"}]]}},
            }
        }
    }
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template, indent=2))
    doc = read(path, cfn_tags=True)
    assert doc == template
    assert where(doc["Resources"], "Model") == f"{path}:3"
    assert where(doc["Resources"]["Model"]["Properties"], "ModelName") == f"{path}:6"


def test_duplicate_keys_in_json_too() -> None:
    with pytest.raises(SourceError, match=r"t\.json:1: duplicate key 'a'"):
        load('{"a": 1, "a": 2}', "t.json")


def test_read_names_the_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.yaml: no such file"):
        read(tmp_path / "nope.yaml")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SourceError, match=r"b\.yaml: cannot read it"):
        read(binary)
