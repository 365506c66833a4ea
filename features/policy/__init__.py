"""The policy: the versioned policy files (standards, thresholds, windows, minimums, bands, words),
how each metric is measured from events, and where a seller stands against each standard (headroom,
recovery counts)."""
