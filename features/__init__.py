"""Seller behaviour from marketplace events: the event schema, its validator, the policy,
the simulator of a marketplace, and (later) the point-in-time feature pipeline."""
