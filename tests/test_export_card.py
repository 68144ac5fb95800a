"""The model card schema: the fields of device/schema.py's ModelCard, checked on read
and write, with one-line errors for a broken card."""
from __future__ import annotations

import copy
import json

import pytest

from edgebench.device.schema import MODEL_CARD_SCHEMA
from edgebench.host.errors import UserError
from edgebench.host.export.card import (CARD_KEYS, card_path_for, read_card, tensor_info,
                                        validate_card, write_card)

CARD = {
    "schema": MODEL_CARD_SCHEMA, "name": "resnet18.int8", "file": "resnet18.int8.tflite",
    "sha256": "0" * 64, "size_bytes": 1234, "recipe": "int8", "architecture": "resnet18",
    "input": {"shape": [1, 64, 64, 1], "dtype": "int8", "layout": "NHWC", "scale": 0.02,
              "zero_point": -3,
              "normalization": {"pixel_scale": 1 / 255, "mean": [0.3], "std": [0.2]}},
    "output": {"shape": [1, 2], "dtype": "int8", "scale": 0.1, "zero_point": 5},
    "class_names": ["benign", "malignant"], "positive_class": 1,
    "source": {"checkpoint": "best.pt", "onnx": "resnet18.onnx", "saved_model": "sm",
               "data_spec": "phantom", "img_size": 64, "split_seed": 0},
    "tools": {"onnx2tf": "1.29.24"}, "conversion_seconds": 1.5,
    "verification": {"max_abs_diff": 0.01, "agreement": 1.0, "accuracy": 0.9, "n": 10},
}


def test_the_card_type_is_the_card_fields():
    """One definition: the host's keys come from schema.ModelCard, and a card goes through the
    type and back unchanged (the extras the agent ignores included)."""
    from edgebench.device.schema import ModelCard

    assert CARD_KEYS == ("schema",) + tuple(
        f for f in ModelCard.__dataclass_fields__ if f not in ("schema", "extra"))
    card = dict(CARD, census={"ops": 3}, mixed={"k": 1})
    assert ModelCard.from_json(card).to_json() == card
    assert list(ModelCard.from_json(card).to_json()) == list(card)


def test_round_trip(tmp_path):
    path = write_card(tmp_path / "resnet18.int8.json", CARD)
    assert read_card(path) == CARD
    assert json.loads(path.read_text())["schema"] == MODEL_CARD_SCHEMA


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.pop("sha256"), "missing field.*sha256"),
    (lambda c: c["input"].pop("normalization"), "input.normalization"),
    (lambda c: c["output"].pop("zero_point"), "output.zero_point"),
    (lambda c: c["source"].pop("split_seed"), "source.split_seed"),
    (lambda c: c["verification"].pop("agreement"), "verification.agreement"),
    (lambda c: c.update(schema="edgebench.model-card/0"), "expected schema"),
    (lambda c: c["input"].update(layout="NCHW"), "NHWC"),
    (lambda c: c.update(input=None), "'input' must be an object"),
])
def test_broken_cards_are_refused_in_one_line(tmp_path, mutate, message):
    card = copy.deepcopy(CARD)
    mutate(card)
    with pytest.raises(UserError, match=message) as err:
        validate_card(card)
    assert "\n" not in str(err.value)
    (tmp_path / "c.json").write_text(json.dumps(card))
    with pytest.raises(UserError):
        read_card(tmp_path / "c.json")


def test_unverified_card_is_valid_and_bad_files_are_one_line_errors(tmp_path):
    validate_card(dict(CARD, verification=None))
    with pytest.raises(UserError, match="not found"):
        read_card(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read model card"):
        read_card(tmp_path / "bad.json")


def test_tensor_info_and_card_path():
    import numpy as np

    assert tensor_info({"shape": np.array([1, 8, 8, 1]), "dtype": np.int8,
                        "quantization": (0.5, -2)}) == \
        {"shape": [1, 8, 8, 1], "dtype": "int8", "scale": 0.5, "zero_point": -2}
    assert tensor_info({"shape": [1, 2], "dtype": np.float32, "quantization": (0.0, 0)})["scale"] == 0.0
    assert card_path_for("a/resnet18.int8.tflite").name == "resnet18.int8.json"
