"""Serving seller-risk scores: the scorer and score record shared by the HTTP service (`api`) and
the weekly batch job (`batch`), the analysts' helpers (`analysis`), the serving commands (`cli`)
and the composition root that assembles `seller-risk` (`main`). Imports `features` and `models`;
only `main` imports `training`."""
