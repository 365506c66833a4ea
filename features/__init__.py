"""Seller behaviour from marketplace events: the event schema and its validator, the versioned
policies, the feature spec, the point-in-time pipeline (DuckDB, or Spark with the same SQL), the
snapshot writer and its on-disk layout, the marketplace simulator, and the settings every package
reads. The lowest layer: it imports no other package of this project."""
