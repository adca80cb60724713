#!/usr/bin/env python3
"""Checks tabular scoring outputs against their input folder and against a reference output.

    check_outputs.py --input INPUT_DIR [--max-prob-diff 1e-5] REF=PATH NAME=PATH [NAME=PATH ...]

Each PATH is one CSV with (at least) id,prediction,probability,source_file. The first NAME=PATH is the
reference (scripts/bench-tabular.sh passes the native bound). For every output:
  * every id of the input files appears exactly once (no row lost, none doubled, no stranger);
  * source_file is the name of the input file that row came from.
For every other output against the reference (joined on id):
  * predictions are equal (rows that differ are counted and shown);
  * max |probability difference| is at most --max-prob-diff;
  * source_file is equal.
Also reported, not checked: whether the output is in input order (sluice and the bound write in input
order; the Azure-style peer writes in completion order).
Prints a JSON report on stdout and one line per failure on stderr; exits 1 if anything differs.
Needs numpy and pandas (scripts/python-env.sh's venv has them).
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import pandas as pd


def load_input(folder):
    files = sorted(glob.glob(os.path.join(folder, "*.csv")))
    if not files:
        sys.exit(f"check_outputs: no *.csv files in {folder}")
    ids, names = [], []
    for f in files:
        col = pd.read_csv(f, usecols=["id"], dtype={"id": np.int64}, engine="c")["id"].to_numpy()
        ids.append(col)
        names.append(np.full(len(col), os.path.basename(f), dtype=object))
    ids = np.concatenate(ids)
    names = np.concatenate(names)
    return ids, names


def load_output(path):
    df = pd.read_csv(path, usecols=["id", "prediction", "probability", "source_file"],
                     dtype={"id": np.int64, "prediction": np.int64, "probability": np.float64,
                            "source_file": object}, engine="c")
    return df


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outputs", nargs="+", help="NAME=PATH; the first is the reference")
    ap.add_argument("--input", required=True, help="the input folder the outputs were scored from")
    ap.add_argument("--max-prob-diff", type=float, default=1e-5,
                    help="largest |probability difference| accepted against the reference (default 1e-5)")
    a = ap.parse_args()

    failures = []
    in_ids, in_files = load_input(a.input)
    order = np.argsort(in_ids, kind="stable")
    in_ids, in_files = in_ids[order], in_files[order]
    if len(np.unique(in_ids)) != len(in_ids):
        failures.append("input: ids are not distinct; the id checks below are meaningless")
    report = {"input": {"folder": a.input, "rows": int(len(in_ids))}, "outputs": {}, "against_reference": {}}

    tables = {}
    for spec in a.outputs:
        if "=" not in spec:
            sys.exit(f"check_outputs: expected NAME=PATH, got {spec}")
        name, path = spec.split("=", 1)
        if not os.path.isfile(path):
            failures.append(f"{name}: {path} does not exist")
            continue
        df = load_output(path)
        ids = df["id"].to_numpy()
        in_order = bool(len(ids) < 2 or (np.diff(ids) > 0).all())
        df = df.sort_values("id", kind="stable").reset_index(drop=True)
        ids = df["id"].to_numpy()
        distinct = int(len(np.unique(ids)))
        info = {"path": path, "rows": int(len(df)), "distinct_ids": distinct, "in_input_order": in_order,
                "positives": int(df["prediction"].sum())}
        exact = len(df) == len(in_ids) and np.array_equal(ids, in_ids)
        info["every_input_id_once"] = bool(exact)
        if not exact:
            missing = np.setdiff1d(in_ids, ids)
            extra = np.setdiff1d(ids, in_ids)
            doubled = len(ids) - distinct
            failures.append(f"{name}: {len(df)} rows for {len(in_ids)} input rows: {len(missing)} ids missing"
                            f" (e.g. {missing[:5].tolist()}), {len(extra)} not in the input"
                            f" (e.g. {extra[:5].tolist()}), {doubled} doubled")
        else:
            wrong = df["source_file"].to_numpy() != in_files
            info["source_file_matches_input"] = not bool(wrong.any())
            if wrong.any():
                i = int(np.flatnonzero(wrong)[0])
                failures.append(f"{name}: {int(wrong.sum())} rows name the wrong source_file (id {ids[i]}:"
                                f" {df['source_file'].iat[i]!r}, read from {in_files[i]!r})")
        report["outputs"][name] = info
        tables[name] = df

    names = list(tables)
    if names and names[0] == a.outputs[0].split("=", 1)[0]:
        ref_name = names[0]
        ref = tables[ref_name]
        for name in names[1:]:
            df = tables[name]
            key = f"{name} vs {ref_name}"
            if len(df) != len(ref) or not np.array_equal(df["id"].to_numpy(), ref["id"].to_numpy()):
                report["against_reference"][key] = "id sets differ"
                failures.append(f"{key}: the id sets differ, not compared")
                continue
            differ = df["prediction"].to_numpy() != ref["prediction"].to_numpy()
            diff = np.abs(df["probability"].to_numpy() - ref["probability"].to_numpy())
            same_src = bool((df["source_file"].to_numpy() == ref["source_file"].to_numpy()).all())
            max_diff = float(diff.max()) if len(diff) else 0.0
            report["against_reference"][key] = {"predictions_equal": not bool(differ.any()),
                                                "differing_predictions": int(differ.sum()),
                                                "max_abs_prob_diff": max_diff, "source_file_equal": same_src}
            if differ.any():
                ids = df["id"].to_numpy()[differ][:5].tolist()
                failures.append(f"{key}: {int(differ.sum())} predictions differ (ids {ids} ...)")
            if not max_diff <= a.max_prob_diff:
                failures.append(f"{key}: max |probability difference| {max_diff:.3g} > {a.max_prob_diff:g}")
            if not same_src:
                failures.append(f"{key}: source_file differs")
    report["ok"] = not failures
    report["failures"] = failures
    print(json.dumps(report, indent=1))
    for f in failures:
        print(f"check_outputs: {f}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
