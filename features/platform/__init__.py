"""The platform pieces every package shares, at the bottom of the layers: settings and their
environment variables, the on-disk layout of tables and side data, atomic writes, fingerprints,
number formatting and terminal output. Nothing here knows about sellers or standards; it lives under
`features/` because the top level of the repository is fixed and `features` is its ground floor."""
