"""ts_model: segment tiling, the program layer, the label map, frozen and fine-tuned AMs."""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import make_tiny_am

import ts_model
from utils import V2SError

LEGACY = Path(__file__).resolve().parent / "data" / "legacy_v2s_mask.keras"  # written before MaskSpec


class TestTiling:
    def test_segments_start_where_the_original_put_them(self):
        assert ts_model.segment_starts(500, 1) == [0]
        assert ts_model.segment_starts(500, 3) == [0, 5000, 10000]  # 32 fit, 10 per segment
        assert ts_model.segment_starts(96, 10) == [0, 1536, 3072, 4608, 6144, 7680, 9216, 10752, 12288, 13824]
        assert ts_model.segment_starts(16000, 1) == [0]

    def test_an_offset_shifts_every_copy_and_shrinks_the_room(self):
        assert ts_model.segment_starts(500, 3, offset=512) == [512, 5512, 10512]  # 30 fit after 512 zeros
        with pytest.raises(V2SError, match="fits at most 30 times in 15488 samples"):
            ts_model.segment_starts(500, 31, offset=512)
        with pytest.raises(V2SError, match="--offset 15600 leaves no room"):
            ts_model.segment_starts(500, 1, offset=15600)

    def test_tiled_waveform_holds_the_copies_and_zeros_elsewhere(self):
        x = np.arange(1, 501, dtype=np.float32)[None, :]
        wave = ts_model.tile_segments(x, 3)
        assert wave.shape == (1, 16000) and wave.dtype == np.float32
        for start in (0, 5000, 10000):
            np.testing.assert_array_equal(wave[0, start : start + 500], x[0])
        assert np.count_nonzero(wave) == 1500

    def test_too_many_segments_is_a_clear_error(self):
        with pytest.raises(V2SError, match="--seg 33 is too large: a series of length 500 fits at most 32 times"):
            ts_model.segment_starts(500, 33)

    def test_series_longer_than_16000_is_refused_naming_the_limit(self):
        with pytest.raises(V2SError, match="16000"):
            ts_model.tile_segments(np.zeros((2, 16001)), 1)

    def test_mask_is_zero_exactly_where_the_series_sits(self):
        mask = ts_model.program_mask(500, 3)
        wave = ts_model.tile_segments(np.ones((1, 500)), 3)[0]
        np.testing.assert_array_equal(mask, 1.0 - wave)


class TestLabelMapping:
    def test_first_map_is_the_originals(self):
        assert ts_model.label_mapping(2, 3, "first") == [[0, 1, 2], [3, 4, 5]]
        assert ts_model.label_mapping(3, 1, "first") == [[0], [1], [2]]

    def test_random_map_is_seeded_and_non_overlapping(self):
        groups = ts_model.label_mapping(5, 7, "random", seed=11)
        flat = [s for g in groups for s in g]
        assert len(flat) == 35 == len(set(flat)) and all(0 <= s < 36 for s in flat)
        assert groups == ts_model.label_mapping(5, 7, "random", seed=11)
        assert groups != ts_model.label_mapping(5, 7, "random", seed=12)

    def test_too_many_mapped_labels_names_the_maximum(self):
        with pytest.raises(V2SError, match="needs 42 source labels but the AM has 36: the maximum mapping number is 5"):
            ts_model.label_mapping(7, 6)

    def test_target_probability_is_the_mean_of_its_sources(self):
        probs = np.random.default_rng(0).dirichlet(np.ones(36), size=4).astype(np.float32)
        groups = [[0, 1, 2], [5, 9, 30]]
        out = keras.ops.convert_to_numpy(ts_model.LabelMap(groups)(probs))
        np.testing.assert_allclose(out[:, 0], probs[:, [0, 1, 2]].mean(axis=1), rtol=1e-6)
        np.testing.assert_allclose(out[:, 1], probs[:, [5, 9, 30]].mean(axis=1), rtol=1e-6)


class TestProgramLayer:
    def build(self, **kwargs):
        layer = ts_model.ARTLayer(**kwargs)
        layer.build((None, 16000))
        return layer

    def test_theta_has_16000_glorot_values_and_an_l2_penalty(self):
        layer = self.build(dropout=0.0, l2=0.04)
        theta = keras.ops.convert_to_numpy(layer.theta)
        assert theta.shape == (16000, 1)
        limit = np.sqrt(6 / (16000 + 1))
        assert np.abs(theta).max() <= limit and theta.std() > limit / 3
        expected_penalty = 0.04 * np.sum(theta.astype(np.float64) ** 2)
        np.testing.assert_allclose(float(layer.losses[0]), expected_penalty, rtol=1e-4)

    def test_output_is_input_plus_theta_at_inference(self):
        layer = self.build(dropout=0.4)
        x = np.random.default_rng(0).normal(size=(3, 16000)).astype(np.float32)
        theta = keras.ops.convert_to_numpy(layer.theta)[:, 0]
        for _ in range(2):  # dropout is off: the same output every time
            out = keras.ops.convert_to_numpy(layer(x, training=False))
            np.testing.assert_allclose(out, x + theta, rtol=1e-6)

    def test_dropout_acts_on_theta_in_training_only(self):
        layer = self.build(dropout=0.4)
        x = np.zeros((2, 16000), np.float32)
        out = keras.ops.convert_to_numpy(layer(x, training=True))
        dropped = np.mean(out[0] == 0.0)
        assert 0.35 < dropped < 0.45
        np.testing.assert_array_equal(out[0], out[1])  # one program for the whole batch

    def test_mask_zeroes_theta_where_the_series_sits(self):
        mask = ts_model.program_mask(500, 2)
        layer = self.build(dropout=0.0, mask=mask)
        out = keras.ops.convert_to_numpy(layer(np.zeros((1, 16000), np.float32)))[0]
        assert np.all(out[mask == 0] == 0) and np.all(out[mask == 1] != 0)


def fit_briefly(model, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 16000)).astype(np.float32)
    y = rng.integers(0, 2, size=16)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)


class TestBuildV2S:
    def test_frozen_am_and_its_batchnorm_stay_unchanged_by_fit(self):
        am = make_tiny_am()
        before = [np.array(w) for w in am.weights]  # includes BatchNorm moving mean/variance
        model = ts_model.build_v2s(am, 2, [[0, 1], [2, 3]], mod="1")
        assert [w.name for w in model.trainable_weights] == ["theta"]
        theta_before = np.array(model.get_layer("art").theta)
        fit_briefly(model)
        for old, new in zip(before, am.weights):
            np.testing.assert_array_equal(old, np.array(new))
        assert not np.array_equal(theta_before, np.array(model.get_layer("art").theta))

    def test_mod2_fine_tunes_the_am_too(self):
        am = make_tiny_am()
        kernel_before = np.array(am.get_layer("conv").kernel)
        model = ts_model.build_v2s(am, 2, [[0, 1], [2, 3]], mod="2")
        assert len(model.trainable_weights) > 1
        fit_briefly(model)
        assert not np.array_equal(kernel_before, np.array(am.get_layer("conv").kernel))

    def test_mod0_outputs_the_36_source_classes(self):
        model = ts_model.build_v2s(make_tiny_am(), 2, None, mod="0")
        assert model.output_shape == (None, 36)

    def test_mod1_outputs_the_am_on_x_plus_theta_through_the_label_map(self):
        am = make_tiny_am()
        groups = [[0, 5], [1, 7], [2, 30]]
        model = ts_model.build_v2s(am, 3, groups, mod="1")
        x = np.random.default_rng(2).normal(size=(2, 16000)).astype(np.float32)
        theta = keras.ops.convert_to_numpy(model.get_layer("art").theta)[:, 0]
        out = keras.ops.convert_to_numpy(model(x))
        expected = keras.ops.convert_to_numpy(am(x + theta)) @ ts_model.mapping_matrix(groups)
        assert out.shape == (2, 3)
        np.testing.assert_allclose(out, expected, rtol=1e-6)

    def test_predictions_are_deterministic_at_inference(self):
        model = ts_model.build_v2s(make_tiny_am(), 2, [[0, 1], [2, 3]], mod="1", dropout=0.4)
        x = np.random.default_rng(1).normal(size=(4, 16000)).astype(np.float32)
        np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))

    def test_unknown_mod_is_refused(self):
        with pytest.raises(V2SError, match="unknown --mod 7"):
            ts_model.build_v2s(make_tiny_am(), 2, [[0], [1]], mod="7")


class TestSavedModels:
    """The mask is saved as its recipe (`MaskSpec`: three numbers), and files written before that still load."""

    def build(self, mask):
        model = ts_model.build_v2s(make_tiny_am(), 2, [[0, 1, 2], [3, 4, 5]], "1", 0.4, 0.04, mask=mask)
        model.get_layer("art").theta.assign(np.full((16000, 1), 0.05, np.float32))
        return model

    def test_a_saved_mask_is_three_numbers_and_comes_back_the_same(self, tmp_path):
        model = self.build(ts_model.MaskSpec(100, 2, 448))
        assert model.get_layer("art").get_config()["mask"] == {"length": 100, "segments": 2, "offset": 448}
        model.save(tmp_path / "v2s.keras")
        reloaded = keras.saving.load_model(tmp_path / "v2s.keras", compile=False)
        x = np.random.default_rng(0).normal(size=(2, 16000)).astype(np.float32)
        np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(reloaded.get_layer("art").program()), 0.05 * ts_model.program_mask(100, 2, 448)
        )

    def test_a_mask_given_as_values_is_kept_as_values(self):
        values = ts_model.program_mask(100, 1, 0)
        layer = self.build(values).get_layer("art")
        assert layer.get_config()["mask"] == values.tolist()

    def test_a_keras_file_from_before_mask_specs_loads_and_predicts_as_it_did(self):
        config = json.loads(zipfile.ZipFile(LEGACY).read("config.json"))
        art = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "ARTLayer")
        assert len(art["config"]["mask"]) == 16000  # the old format: the mask's values
        expected = json.loads(LEGACY.with_suffix(".json").read_text())["predictions"]
        model = keras.saving.load_model(LEGACY, compile=False)
        x = np.random.default_rng(0).normal(scale=0.3, size=(2, 16000)).astype(np.float32)
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(model.get_layer("art").program()), 0.05 * ts_model.program_mask(100, 2, 448)
        )

    def test_weights_saved_before_mask_specs_load_into_a_model_built_with_one(self, tmp_path):
        """The legacy file's weights (its model.weights.h5, the `.weights.h5` format) in today's model."""
        (tmp_path / "old.weights.h5").write_bytes(zipfile.ZipFile(LEGACY).read("model.weights.h5"))
        model = ts_model.build_v2s(
            make_tiny_am(seed=1), 2, [[0, 1, 2], [3, 4, 5]], "1", 0.4, 0.04, mask=ts_model.MaskSpec(100, 2, 448)
        )
        model.load_weights(tmp_path / "old.weights.h5")
        expected = json.loads(LEGACY.with_suffix(".json").read_text())["predictions"]
        x = np.random.default_rng(0).normal(scale=0.3, size=(2, 16000)).astype(np.float32)
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6)
