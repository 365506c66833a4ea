"""Seller behaviour from marketplace events, the ground floor of the layers, in rooms named after its
parts: `events` (the canonical tables and their validator), `policy` (the versioned policy files, the
measures, where a seller stands against each standard), `pipeline` (the feature spec, flows, SQL,
point-in-time snapshots, Spark), `simulation` (the marketplace simulator), and below them all
`platform` (settings, on-disk layout, atomic writes, fingerprints, formatting, terminal output). `cli`
holds the package's commands. It imports no other package of this project."""
