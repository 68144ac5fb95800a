"""The layer debugger, the op census and the int8-mixed recipe on the tiny real CNN of
test_export (conv -> BN -> ReLU -> padded MaxPool -> conv -> pool -> linear), converted for real."""
from __future__ import annotations

import csv

import pytest
from test_export import ARCH, make_checkpoint, synthetic
from test_export import converted, registered, testset  # noqa: F401  (fixtures)

from edgebench.host.errors import UserError
from edgebench.host.export import tf_convert
from edgebench.host.export.card import read_card
from edgebench.host.export.census import op_census, summary_line
from edgebench.host.export.debug import LAYER_COLUMNS
from edgebench.host.export.mixed import ENDS, MixedOptions, choose, rank, schedule
from edgebench.host.export.pipeline import convert_checkpoint, record_verification, reference_for
from edgebench.host.export.quantize import QuantizeOptions, VerifyData, quantize
from edgebench.host.export.verify import normalize

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def calib(converted):  # noqa: F811
    return normalize(synthetic(48, 3)[0], converted.source.normalization)


@pytest.fixture(scope="module")
def debugged(converted, testset, calib, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("debug")
    results = quantize(converted.saved_model, ["dynamic", "fp16", "int8", "int16x8"], calib, out,
                       converted.source,
                       QuantizeOptions(verify=reference_for(converted.source, *testset),
                                       progress=False, debug=True))
    return out, {r.recipe: r for r in results}


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_debug_writes_the_layer_table_and_the_card_names_the_worst(debugged):
    out, by = debugged
    assert by["int8"].status == "ok", by["int8"].error
    rows = read_rows(out / f"{ARCH}.int8.layers.csv")
    assert tuple(rows[0]) == LAYER_COLUMNS
    assert len(rows) >= 4  # two convolutions, the pool, the mean and the linear layer
    ops = {r["op"] for r in rows}
    assert {"CONV_2D", "FULLY_CONNECTED"} <= ops
    ratios = [float(r["rmse_over_scale"]) for r in rows]
    assert ratios == sorted(ratios, reverse=True) and [int(r["rank"]) for r in rows] == \
        list(range(1, len(rows) + 1))
    for r in rows:
        assert float(r["scale"]) > 0 and 0 < float(r["rmse_over_scale"]) < 5
        assert float(r["float_min"]) <= float(r["float_max"])
        assert -128 <= int(r["zero_point"]) <= 127
    card = read_card(by["int8"].card)
    assert card["layers_csv"] == f"{ARCH}.int8.layers.csv"
    assert card["worst_layers"][0]["tensor"] == rows[0]["tensor"]
    assert len(card["worst_layers"]) == min(5, len(rows))


def test_int16x8_debug_is_a_note_and_the_model_is_kept(debugged):
    out, by = debugged
    r = by["int16x8"]
    assert r.status == "ok" and r.tflite.is_file()
    assert "int16x8" in r.error and "debug" in r.error
    assert not (out / f"{ARCH}.int16x8.layers.csv").exists()


def test_census_of_each_recipe(debugged, converted):  # noqa: F811
    _, by = debugged
    fp32 = op_census(converted.tflite)
    assert fp32["kind"] == "float" and fp32["float_ops"] == [] and fp32["integer_ops"] == 0
    assert fp32["op_types"]["CONV_2D"]["count"] == 2
    assert "PADV2" not in fp32["op_types"]  # our zero-padding fix
    assert op_census(by["dynamic"].tflite)["kind"] == "dynamic-range"
    assert op_census(by["fp16"].tflite)["kind"] == "fp16-weights"
    int8 = op_census(by["int8"].tflite)
    assert int8["kind"] == "integer" and int8["float_op_count"] == 0 and int8["float_ops"] == []
    assert int8["q_dq_pairs"] == 0 and int8["custom_ops"] == [] and int8["extreme_scales"] == []
    assert int8["io"] == {"input": ["int8"], "output": ["int8"]}
    assert set(int8["op_types"]["CONV_2D"]["types"]) == {"int8,int8,int32->int8"}
    assert read_card(by["int8"].card)["census"] == int8
    assert summary_line(int8) == f"integer, {int8['ops']} ops, 0 float, 0 Q/DQ pairs"


def test_census_refuses_a_file_that_is_no_model(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="not a TFLite model"):
        op_census(bad)


def test_census_names_the_padv2_of_the_maxpool_trap(tmp_path, monkeypatch, testset):  # noqa: F811
    """Without our fix onnx2tf pads the MaxPool with float32.min; the int8 model converts, and
    the census says where it went wrong before anything tries to run it."""
    monkeypatch.setattr(tf_convert, "_is_nonnegative", lambda tensor, depth=0: False)
    ckpt = make_checkpoint(tmp_path / "trap.pt")
    conv = convert_checkpoint(ckpt, tmp_path, verify_images=testset[0][:8],
                              verify_labels=testset[1][:8])
    assert "PADV2" in op_census(conv.tflite)["op_types"]
    (r,) = quantize(conv.saved_model, ["int8"], normalize(synthetic(16, 3)[0],
                    conv.source.normalization), tmp_path, conv.source,
                    QuantizeOptions(progress=False))
    assert r.status == "ok", r.error
    census = read_card(r.card)["census"]
    (hit,) = [e for e in census["extreme_scales"] if e["op"] == "PADV2"]
    assert hit["scale"] > 1e30  # float32.min / 127, give or take
    assert "PADV2" in summary_line(census) and "extreme scale" in summary_line(census)


@pytest.mark.trained
def test_mixed_keeps_the_k_worst_layers_in_float(converted, testset, calib, tmp_path):  # noqa: F811
    verify = reference_for(converted.source, *testset)
    (r,) = quantize(converted.saved_model, ["int8-mixed"], calib, tmp_path, converted.source,
                    QuantizeOptions(verify=verify, progress=False,
                                    mixed=MixedOptions(keep_float=2)))
    assert r.status == "ok", r.error
    card = read_card(r.card)
    rows = read_rows(tmp_path / f"{ARCH}.int8-mixed.layers.csv")
    # --keep-float K counts layers: the ends' rows are in the table but not among the K
    assert {x["tensor"] for x in rows} >= set(ENDS)
    layers = [x for x in rows if x["tensor"] not in ENDS]
    assert card["mixed"]["k"] == 2 and card["mixed"]["keep_float"] == rank(rows, False)[:2]
    assert card["mixed"]["layers"] == len(layers) and card["mixed"]["float_ends"] == []
    # ranked by the output error each layer causes alone, which the table records for each
    alone = [float(x["output_mse_alone"]) for x in rows]
    assert all(a >= 0 for a in alone) and max(alone) > 0
    worst = max(layers, key=lambda x: float(x["output_mse_alone"]))["tensor"]
    assert card["mixed"]["keep_float"][0] == worst
    census = card["census"]
    assert census["kind"] == "mixed" and census["float_op_count"] >= 2
    assert census["dequantize_in_graph"] >= 1 and census["io"]["input"] == ["int8"]
    assert card["input"]["dtype"] == "int8" and r.verification["agreement"] >= 0.9
    record_verification(tmp_path, [r], ARCH)
    (row,) = read_rows(tmp_path / "verify.csv")
    assert row["recipe"] == "int8-mixed" and row["float_layers"] == "2"


def test_unreachable_target_keeps_the_best_model_and_says_so(converted, testset, calib,  # noqa: F811
                                                             tmp_path):
    verify = reference_for(converted.source, *testset)
    # A reference that disagrees with any model on three images: agreement 1.0 is out of reach.
    ref = verify.reference.copy()
    ref[:3] = ref[:3, ::-1]
    tricked = VerifyData(verify.inputs, ref, verify.labels, verify.reference_kind)
    (r,) = quantize(converted.saved_model, ["int8-mixed"], calib, tmp_path, converted.source,
                    QuantizeOptions(verify=tricked, progress=False,
                                    mixed=MixedOptions(target_agreement=1.0, max_float=3)))
    assert r.status == "ok" and r.tflite.is_file()
    m = read_card(r.card)["mixed"]
    assert m["reached"] is False and m["k"] <= 3 and len(m["tried"]) >= 2
    assert "not reached" in r.error and "best found" in r.error
    assert m["agreement"] == max(a for _, a in m["tried"])


def test_keep_float_beyond_the_layer_count_fails_that_recipe_only(converted, testset, calib,  # noqa: F811
                                                                   tmp_path):
    results = quantize(converted.saved_model, ["fp16", "int8-mixed"], calib, tmp_path,
                       converted.source,
                       QuantizeOptions(verify=reference_for(converted.source, *testset),
                                       progress=False, mixed=MixedOptions(keep_float=500)))
    by = {r.recipe: r for r in results}
    assert by["fp16"].status == "ok"
    assert by["int8-mixed"].status == "failed"
    assert "--keep-float 500 is more than the" in by["int8-mixed"].error
    assert "\n" not in by["int8-mixed"].error
    assert not (tmp_path / f"{ARCH}.int8-mixed.tflite").exists()


@pytest.mark.parametrize("options, message", [
    (MixedOptions(keep_float=-1), "--keep-float must be 0 or more"),
    (MixedOptions(target_agreement=1.5), r"--target-agreement must be in \(0, 1\]"),
    (MixedOptions(keep_float=1, target_agreement=0.9), "not both"),
    (MixedOptions(max_float=0), "--max-float must be at least 1"),
])
def test_bad_mixed_options_are_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        options.check()


def test_search_finds_the_smallest_k_of_the_ranking_and_is_bounded():
    ranked = [f"t{i}" for i in range(100)]
    # Not monotonic: K=12 reaches the target, 13 does not, 14 does again; 20 and up always.
    table = {12: 0.995, 14: 0.995}
    seen = []

    def evaluate(keep):
        seen.append(len(keep))
        return table.get(len(keep), 0.999 if len(keep) >= 20 else 0.95)

    c = choose(ranked, evaluate, MixedOptions(target_agreement=0.99))
    assert c.k == 12 and c.reached and c.keep_float == ranked[:12]
    assert len(seen) == len(set(seen)) <= 20  # each K built once, far fewer than 100
    seen.clear()
    c = choose(ranked, lambda keep: 0.9, MixedOptions(target_agreement=0.99, max_float=30))
    assert not c.reached and c.k == 0 and max(k for k, _ in c.tried) == 30
    assert schedule(100, 100)[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 10, 12] and schedule(100, 100)[-1] == 100
