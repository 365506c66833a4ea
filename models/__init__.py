"""The model contract training writes and every scorer reads: the LightGBM booster with its
calibration and the feature-spec hash it was trained for (`risk_model`), where models live and how
a registry URI becomes one (`registry`), TreeSHAP contributions turned into a reviewer's reasons
(`explain`), and the cohorts and calibration error both the promotion gate and the analysts use
(`cohorts`). The local MLflow store (`mlflow.db`, `artifacts/`) sits beside these modules and is
never committed."""
