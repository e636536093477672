"""Reference values from scikit-learn (metrics, calibration_curve) / fairlearn for edgeloop-eval's differential tests.

Reads one JSON object on stdin ({"task": ..., "cases": [...]}) and prints a JSON list with
one result per case. NaN is written as null.
"""
import json
import math
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def clean(x):
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return None if math.isnan(x) else x
    return x


def classification(case):
    from sklearn import metrics as m

    nc = case["n_classes"]
    labels = list(range(nc))
    t = np.array(case["y_true"], dtype=int)
    p = np.array(case["y_pred"], dtype=int)
    zd = case["zero_division"]
    zd = np.nan if zd == "nan" else zd
    out = {
        "confusion": m.confusion_matrix(t, p, labels=labels),
        "accuracy": m.accuracy_score(t, p),
    }
    for avg in ["macro", "micro", "weighted"]:
        out[avg] = m.precision_recall_fscore_support(
            t, p, labels=labels, average=avg, zero_division=zd
        )[:3]
    out["per_class"] = m.precision_recall_fscore_support(
        t, p, labels=labels, average=None, zero_division=zd
    )
    if nc == 2:
        out["binary"] = m.precision_recall_fscore_support(
            t, p, pos_label=1, average="binary", zero_division=zd
        )[:3]
    if nc >= 3:
        s = np.array(case["scores"], dtype=float)
        out["top_k"] = [
            m.top_k_accuracy_score(t, s, k=k, labels=labels) for k in range(1, nc)
        ]
    return out


def fairness(case):
    from fairlearn import metrics as fm

    t = np.array(case["y_true"], dtype=int)
    p = np.array(case["y_pred"], dtype=int)
    g = np.array(case["groups"])
    out = {}
    for method in ["between_groups", "to_overall"]:
        out["dp_difference_" + method] = fm.demographic_parity_difference(
            t, p, sensitive_features=g, method=method
        )
        out["dp_ratio_" + method] = fm.demographic_parity_ratio(
            t, p, sensitive_features=g, method=method
        )
        out["eo_difference_" + method] = fm.equalized_odds_difference(
            t, p, sensitive_features=g, method=method
        )
        out["eo_ratio_" + method] = fm.equalized_odds_ratio(
            t, p, sensitive_features=g, method=method
        )
    from sklearn.metrics import accuracy_score

    mf = fm.MetricFrame(
        metrics={"accuracy": accuracy_score, "selection_rate": fm.selection_rate,
                 "count": fm.count},
        y_true=t, y_pred=p, sensitive_features=g,
    )
    by = mf.by_group
    out["by_group"] = {
        str(k): {"accuracy": by.loc[k, "accuracy"], "selection_rate": by.loc[k, "selection_rate"],
                 "count": by.loc[k, "count"]}
        for k in by.index
    }
    return out


def calibration(case):
    from sklearn.calibration import calibration_curve

    m = case["n_bins"]
    conf = np.array(case["conf"], dtype=float)
    ok = np.array(case["correct"], dtype=int)
    prob_true, prob_pred = calibration_curve(ok, conf, n_bins=m, strategy="uniform")
    # The bin of each confidence exactly as calibration_curve assigns it (its own two lines).
    bins = np.linspace(0.0, 1.0, m + 1)
    counts = np.bincount(np.searchsorted(bins[1:-1], conf), minlength=m)
    nz = counts[counts > 0]
    gaps = np.abs(prob_true - prob_pred)
    return {
        "prob_true": prob_true,
        "prob_pred": prob_pred,
        "counts": counts,
        "ece": float(np.sum(nz / len(conf) * gaps)),
        "mce": float(np.max(gaps)),
    }


TASKS = {"classification": classification, "fairness": fairness, "calibration": calibration}

if __name__ == "__main__":
    req = json.load(sys.stdin)
    fn = TASKS[req["task"]]
    json.dump(clean([fn(c) for c in req["cases"]]), sys.stdout)
