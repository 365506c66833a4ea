"""Training, backtesting, gating and registering seller-risk models, and the training commands
(`cli`). Imports `features` and `models`, never `serving`."""
