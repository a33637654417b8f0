"""Rebuild data/wdbc.csv from scikit-learn's bundled copy of the WDBC dataset.

The shipped file was produced by this script from scikit-learn 1.9.1's
``sklearn/datasets/data/breast_cancer.csv``. That file starts with a count line
("569,30,malignant,benign") instead of a header; the feature names below are the
ones in scikit-learn's loader (``load_breast_cancer``), written in snake_case so
they fit the query grammar. scikit-learn's target is 0 = malignant, 1 = benign;
we name that column ``benign``.

Usage:  python scripts/make_dataset.py PATH/TO/breast_cancer.csv > data/wdbc.csv
(or a scikit-learn wheel: python scripts/make_dataset.py scikit_learn-*.whl)
"""

from __future__ import annotations

import csv
import io
import sys
import zipfile

FEATURES = [
    f"{stat}_{name}"
    for stat in ("mean", "se", "worst")
    for name in (
        "radius", "texture", "perimeter", "area", "smoothness", "compactness",
        "concavity", "concave_points", "symmetry", "fractal_dimension",
    )
]


def main(path: str) -> None:
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as wheel:
            text = wheel.read("sklearn/datasets/data/breast_cancer.csv").decode()
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    rows = list(csv.reader(io.StringIO(text)))
    n_rows, n_features = int(rows[0][0]), int(rows[0][1])
    assert n_features == len(FEATURES) and len(rows) - 1 == n_rows
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow([*FEATURES, "benign"])
    out.writerows(rows[1:])


if __name__ == "__main__":
    main(sys.argv[1])
