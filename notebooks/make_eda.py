"""Generate ``notebooks/eda.ipynb`` (outputs cleared) from the cells below.

The notebook is written by this script so it is reviewed as plain Python, stays free of
stored outputs, and cannot drift from what the tests execute
(tests/notebooks/test_eda.py checks the committed file equals this script's output).

    .venv/bin/python notebooks/make_eda.py          # rewrite notebooks/eda.ipynb
    .venv/bin/jupyter nbconvert --execute --to notebook --inplace notebooks/eda.ipynb  # to look
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).resolve().parent / "eda.ipynb"

CELLS: list[tuple[str, str]] = [
    (
        "md",
        """\
# Water potability: exploratory data analysis

What the training table looks like, and what that means for the model: class balance,
missing values, the distribution of each measurement by class, and correlations.

**Data source.** The training table `water.water_potability` of the configured database
(`DATABASE_URL`, or the local stack started by `make run`); when no database is reachable,
the checksum-verified public data set in `data/`. The first code cell says which one was used.
Run it from anywhere: it works from the repository root.""",
    ),
    (
        "code",
        """\
import io
import os
from pathlib import Path

# run from the repository root, like every command of the project (.potability/, data/)
ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "pyproject.toml").exists())
os.chdir(ROOT)

import matplotlib
matplotlib.use("Agg")  # headless: figures are rendered to PNG in the notebook
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Image, display

from potability import config, db, seed
from potability.features import FEATURE_COLUMNS, FEATURE_NAMES, FEATURES_BY_NAME, TARGET

pd.set_option("display.precision", 3)
plt.rcParams.update({"figure.dpi": 90, "axes.spines.top": False, "axes.spines.right": False})


def show(fig):
    \"\"\"Display a figure as PNG (rendered by Agg, no GUI needed) and free it.\"\"\"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    display(Image(buffer.getvalue()))


def ks_statistic(a, b):
    \"\"\"Two-sample Kolmogorov-Smirnov distance: the largest gap between the two ECDFs.\"\"\"
    a, b = np.sort(np.asarray(a)), np.sort(np.asarray(b))
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, side="right") / len(a)
                               - np.searchsorted(b, grid, side="right") / len(b))))


def load_training_table(settings):
    \"\"\"(frame, source): the database's training table, else the data set in data/.\"\"\"
    try:
        conn = db.connect(settings, timeout=5)
    except db.DatabaseUnavailable as exc:
        return seed.load_dataset(), f"data/water_potability.csv (no database: {type(exc).__name__})"
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT {', '.join(FEATURE_COLUMNS)}, potability, source "
                    "FROM water.water_potability ORDER BY id")
        frame = pd.DataFrame(cur.fetchall(), columns=[*FEATURE_NAMES, TARGET, "source"])
    finally:
        conn.close()
    frame[list(FEATURE_NAMES)] = frame[list(FEATURE_NAMES)].astype(float)
    counts = frame["source"].value_counts().to_dict()
    return frame.drop(columns="source"), f"database table water.water_potability {counts}"


frame, source = load_training_table(config.load_settings())
print(f"source: {source}")
print(f"rows: {len(frame)}, features: {len(FEATURE_NAMES)}")
frame.head()""",
    ),
    (
        "md",
        """\
## Class balance

`potability = 1` means the lab found the water safe to drink.""",
    ),
    (
        "code",
        """\
balance = frame[TARGET].value_counts().sort_index()
share = balance / balance.sum()
print(
    f"potable share: {share.get(1, 0):.1%}  "
    f"(potable {balance.get(1, 0)}, not potable {balance.get(0, 0)})"
)
fig, ax = plt.subplots(figsize=(4, 2.6))
ax.bar(
    ["not potable (0)", "potable (1)"],
    [balance.get(0, 0), balance.get(1, 0)],
    color=["#c2410c", "#0f766e"],
)
ax.set_ylabel("samples")
ax.set_title("Class balance")
show(fig)""",
    ),
    (
        "md",
        """\
About 39 % of the public samples are potable: the classes are imbalanced but not extremely.

* **Class weights.** A model that minimises plain log-loss leans toward the majority class
  ("not potable"); weighting classes by inverse frequency (`class_weight="balanced"`) lets the
  minority class shape the decision boundary without discarding or duplicating rows.
* **Stratified folds.** Every cross-validation fold keeps the same 61/39 split, so fold scores
  are comparable and no fold is starved of potable samples.""",
    ),
    ("md", "## Missing values per feature"),
    (
        "code",
        """\
missing = pd.DataFrame({
    "missing": frame[list(FEATURE_NAMES)].isna().sum(),
    "share": frame[list(FEATURE_NAMES)].isna().mean(),
    "share | not potable": frame[frame[TARGET] == 0][list(FEATURE_NAMES)].isna().mean(),
    "share | potable": frame[frame[TARGET] == 1][list(FEATURE_NAMES)].isna().mean(),
})
display(missing)
rows_incomplete = frame[list(FEATURE_NAMES)].isna().any(axis=1).mean()
print(f"rows with at least one missing value: {rows_incomplete:.1%}")
fig, ax = plt.subplots(figsize=(6, 2.8))
missing["share"].plot.barh(ax=ax, color="#6b7280")
ax.invert_yaxis()
ax.set_xlabel("share missing")
ax.set_title("Missing values per feature")
show(fig)""",
    ),
    (
        "md",
        """\
Three measurements are often missing (ph ~15 %, Sulfate ~24 %, Trihalomethanes ~5 %), and
dropping incomplete rows would discard close to 40 % of the data. The missing share is about
the same in both classes, so "missing" itself carries little signal: imputing is reasonable.

* **Imputation inside the folds.** The imputer is a step of the model pipeline and is fitted
  on each training fold only. Imputing the whole table first would let the validation rows'
  statistics (their medians) leak into training, and the held-out precision would be
  optimistic - the one number promotion relies on.
* **The same imputation at serving time.** Sensors miss measurements too (the API accepts
  `null`); the deployed pipeline imputes them exactly as in training.""",
    ),
    ("md", "## Distributions by class"),
    (
        "code",
        """\
fig, axes = plt.subplots(3, 3, figsize=(11, 8))
for ax, name in zip(axes.flat, FEATURE_NAMES):
    values = frame[[name, TARGET]].dropna()
    bins = np.histogram_bin_edges(values[name], bins=30)
    for cls, color, label in ((0, "#c2410c", "not potable"), (1, "#0f766e", "potable")):
        ax.hist(values.loc[values[TARGET] == cls, name], bins=bins, density=True, alpha=0.55,
                color=color, label=label)
    ax.set_title(f"{name} ({FEATURES_BY_NAME[name].unit})", fontsize=10)
axes.flat[0].legend(fontsize=8)
fig.suptitle("Distribution of each measurement by class (density)")
fig.tight_layout()
show(fig)

separation = pd.DataFrame([
    {
        "feature": name,
        "mean | not potable": frame.loc[frame[TARGET] == 0, name].mean(),
        "mean | potable": frame.loc[frame[TARGET] == 1, name].mean(),
        "std | potable": frame.loc[frame[TARGET] == 1, name].std(),
        "KS statistic": ks_statistic(frame.loc[frame[TARGET] == 0, name].dropna(),
                                     frame.loc[frame[TARGET] == 1, name].dropna()),
    }
    for name in FEATURE_NAMES
]).set_index("feature")
display(separation)""",
    ),
    (
        "md",
        """\
The two classes overlap almost completely on every single measurement: class means differ by
a few percent of a standard deviation and the Kolmogorov-Smirnov distance between the class
distributions stays below 0.1. Potable water differs from non-potable mostly in *spread*
(Sulfate, Hardness, Solids and Chloramines vary more among potable samples, ph less), not in
location.

* No single threshold on one measurement separates the classes, and linear models see little;
  tree ensembles, which can use ranges and interactions, are the natural candidates.
* Expect modest scores. The held-out precision at a useful recall is what the pipeline
  optimises and reports; the status page shows it next to the live precision the lab samples
  confirm.""",
    ),
    ("md", "## Correlations"),
    (
        "code",
        """\
corr = frame[[*FEATURE_NAMES, TARGET]].corr()
fig, ax = plt.subplots(figsize=(7.5, 6))
image = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
ax.set_xticks(range(len(corr)), corr.columns, rotation=60, ha="right", fontsize=8)
ax.set_yticks(range(len(corr)), corr.columns, fontsize=8)
for i in range(len(corr)):
    for j in range(len(corr)):
        ax.text(j, i, f"{corr.iloc[i, j]:.2f}", ha="center", va="center", fontsize=6.5)
fig.colorbar(image, ax=ax, shrink=0.8)
ax.set_title("Pearson correlation (pairwise complete rows)")
fig.tight_layout()
show(fig)
off_diagonal = corr.loc[list(FEATURE_NAMES), list(FEATURE_NAMES)].where(
    ~np.eye(len(FEATURE_NAMES), dtype=bool)).abs()
print(f"largest |correlation| between two features: {off_diagonal.max().max():.3f}")
print("correlation of each feature with potability:")
print(corr[TARGET].drop(TARGET).round(3).to_string())""",
    ),
    (
        "md",
        """\
Features are nearly uncorrelated with each other (the largest pair, Solids-Sulfate, has
|r| of about 0.17) and with the target (|r| below 0.04): nothing is redundant, so every
measurement stays in the model, and a linear combination of them cannot do much - another
reason for tree ensembles.

## What this means for modelling

| Finding | Consequence in the pipeline |
|---|---|
| ~39 % potable | `class_weight="balanced"`, stratified folds |
| up to ~24 % missing per feature, ~40 % of rows incomplete | impute *inside* the cross-validation folds (imputer is a pipeline step); same imputer at serving time |
| classes overlap on every feature, tiny correlations | non-linear models (tree ensembles), modest expected scores |
| calling unsafe water "potable" is the costly error | optimise and report **precision** of the potable class, subject to a recall floor so the model cannot win by almost never saying "potable" |

**Why precision.** A false "potable" tells someone unsafe water is safe to drink; a false
"not potable" costs a re-test. So the pipeline ranks candidates by precision of the potable
class at a threshold that still keeps recall above a floor, and quality control compares the
live precision confirmed by lab samples with a floor as well.""",  # noqa: E501 - a Markdown table row cannot wrap
    ),
    (
        "md",
        """\
## A year of readings: the archive as a table

Every reading the model answered is kept in the inference log's archive, one Parquet file per
day, and the whole archive is one table, `water_archive.water_inferences` (docs/archive.md):
DuckDB here, BigQuery on Google Cloud, with the same queries. Below, the documented question
"readings and potable share per sensor per month" - the query is read from docs/archive.md, so
the notebook and the page cannot differ.""",
    ),
    (
        "code",
        """\
import re

from potability.inference import archive_query

settings = config.load_settings()
documented = (ROOT / "docs" / "archive.md").read_text()
monthly_sql = re.search(r"```sql\\n(-- monthly-share: .*?)```", documented, re.S).group(1)
print(monthly_sql)
try:
    totals = archive_query.query_table(
        settings,
        "SELECT COUNT(*) AS readings, COUNT(DISTINCT day) AS days "
        f"FROM {archive_query.TABLE}",
    ).to_pylist()[0]
    print(f"archive: {totals['readings']} readings over {totals['days']} days")
    monthly = archive_query.query_table(settings, monthly_sql).to_pandas()
    display(monthly)
except archive_query.ArchiveNotLocal as exc:  # on Google Cloud: the same query in BigQuery
    print(exc)""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The notebook, no outputs, python3 kernel."""
    notebook = new_notebook(
        cells=[
            new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    for i, cell in enumerate(notebook.cells):
        cell["id"] = f"eda-{i:02d}"  # stable ids: regenerating gives the same file
    return notebook


def render() -> str:
    return nbformat.writes(build()) + "\n"


def main() -> int:
    NOTEBOOK.write_text(render())
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
