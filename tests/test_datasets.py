import re

import numpy as np
import pytest

import gmmflow

SHAPES = {"faithful": (272, 2), "geyser": (299, 2), "galaxies": (82, 1), "iris": (150, 4), "blobs": (200, 2),
          "wine": (178, 13)}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_bundled_datasets(name):
    da = gmmflow.load_dataset(name)
    assert da.dims == ("obs_id", "feature")
    assert da.shape == SHAPES[name]
    assert da.dtype == np.float64 and np.all(np.isfinite(da.values))


def test_feature_names_and_labels():
    assert list(gmmflow.load_dataset("faithful").feature.values) == ["eruptions", "waiting"]
    iris = gmmflow.load_dataset("iris")
    assert sorted(set(iris.species.values)) == ["setosa", "versicolor", "virginica"]
    wine = gmmflow.load_dataset("wine")
    assert wine.feature.values[-1] == "proline" and sorted(set(wine["class"].values)) == [1, 2, 3]


def test_blobs_are_the_documented_draws():
    np.random.seed(42)
    a = np.random.multivariate_normal([0, 0], np.eye(2), 100)
    b = np.random.multivariate_normal([3, 3], np.eye(2), 100)
    np.testing.assert_array_equal(gmmflow.load_dataset("blobs").values, np.vstack([a, b]))


def test_unknown_dataset_lists_known():
    with pytest.raises(ValueError, match=re.escape("Unknown dataset 'faithfull'; known datasets: blobs, faithful, galaxies, geyser, iris, wine.")):
        gmmflow.load_dataset("faithfull")


def test_read_csv_errors(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        gmmflow.read_csv(tmp_path / "empty.csv")
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(ValueError, match=re.escape("column 'b' is not numeric (line 3 of the file holds 'x'). Choose the numeric columns, e.g. --columns a (Python: columns=['a']).")):
        gmmflow.read_csv(tmp_path / "text.csv")
    (tmp_path / "na.csv").write_text("a,b\n1,2\n3,\n")
    with pytest.raises(ValueError, match=re.escape("missing value in column 'b' at line 3 of the file")):
        gmmflow.read_csv(tmp_path / "na.csv")
    (tmp_path / "ok.csv").write_text("a,b,c\n1,2,x\n3,4,y\n")
    da = gmmflow.read_csv(tmp_path / "ok.csv", columns=["b", "a"])
    assert list(da.feature.values) == ["b", "a"] and da.shape == (2, 2)
    with pytest.raises(ValueError, match=re.escape("has no column(s) ['z']")):
        gmmflow.read_csv(tmp_path / "ok.csv", columns=["z"])
