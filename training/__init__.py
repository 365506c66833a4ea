"""Training, backtesting and registering seller-risk models (imports `features`, never `serving`)."""
