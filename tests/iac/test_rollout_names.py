"""pier.iac.rollout's pure parts: alias URIs and the names it gives resources."""

from __future__ import annotations

import re

import pytest

from pier.iac.rollout import AliasUri, RolloutError, _name

SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def test_alias_uris() -> None:
    assert AliasUri.parse("models:/shop@champion") == AliasUri("shop", "champion")
    assert str(AliasUri.parse(" models:/shop@champion/ ")) == "models:/shop@champion"
    for bad in ("models:/shop/3", "models:/shop", "runs:/abc/model", "shop@champion", ""):
        with pytest.raises(RolloutError, match="is not a registry alias"):
            AliasUri.parse(bad)


def test_names_are_sagemaker_names_that_keep_their_stamp() -> None:
    stamp = "20261204211502123"
    long = _name("e" * 63, "variant-" + "v" * 55, "v12", stamp)
    assert len(long) <= 63
    assert long.endswith(stamp)
    assert SAGEMAKER_NAME.fullmatch(long)
    assert _name("shop", "main", "v2", stamp) == f"shop-main-v2-{stamp}"
    # a cut that would end in a hyphen does not leave one before the stamp
    assert SAGEMAKER_NAME.fullmatch(_name("a" * 44 + "-b", "v1", stamp))
