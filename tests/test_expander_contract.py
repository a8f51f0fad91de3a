"""The built-in grid and paired expanders pass the expander contract (hsm_core.testing)."""

from __future__ import annotations

from typing import Any

from hsm_core.testing import ExpanderContract


class TestGridExpander(ExpanderContract):
    expander = "grid"

    def valid_sections(self) -> list[Any]:
        return [
            {"lr": [0.1, 0.01], "batch_size": [16, 32, 64]},
            {"model": ["a", "b"], "seed": 3, "dropout": [0.0, 0.5], "flag": [True, False]},
            {"nested": [{"depth": 2}, {"depth": 3}], "name": ["x"]},
            # what Hydra users write: nested mappings are dotted parameters, strings are sweeps
            {"optimizer": {"lr": "0.001,0.01,0.1", "name": ["adam", "sgd"]}, "layers": "range(0,1,0.25)"},
        ]

    def invalid_sections(self) -> list[tuple[Any, str]]:
        return [
            ({"lr": []}, "empty list"),
            ({"lr": [0.1], "bs": []}, "bs"),
            ({"": [1, 2]}, "empty parameter name"),
            (["lr", "bs"], "grid"),
            ({"lr": "interval(0, 1)"}, "random:"),
            ({"lr": "choice(a,b"}, "expected ')'"),
        ]

    def huge_section(self) -> Any:
        return {f"p{i}": list(range(10)) for i in range(9)}


class TestPairedExpander(ExpanderContract):
    expander = "paired"

    def valid_sections(self) -> list[Any]:
        return [
            [{"arch": {"model": ["small", "large"], "lr": [0.1, 0.01]}}],
            [{"arch": {"model": ["s", "l"], "width": [64, 256]}}, {"opt": {"name": ["sgd", "adam", "lamb"], "wd": [0, 1, 2]}}],
            {"arch": {"model": ["s", "l"], "lr": [1, 2]}},
        ]

    def invalid_sections(self) -> list[tuple[Any, str]]:
        return [
            ([{"arch": {"model": ["s", "l"], "lr": [0.1]}}], "length"),
            ([{"arch": {}}], "arch"),
            ("not a list", "paired"),
        ]

    def huge_section(self) -> Any:
        return [{f"g{i}": {f"a{i}": list(range(10)), f"b{i}": list(range(10))}} for i in range(9)]
