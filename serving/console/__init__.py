"""The reviewer console: server-rendered pages over the weekly score table and the decisions store
(serving.store), served by `seller-risk serve` under /console. One module per page (`signin`, `queue`,
`seller`, `leader`), each with its handlers and what it shows; `tables` reads the score table, the
snapshots and the policy actions, `rates` a seller's standards week by week; `sessions` and `app` are
what every page shares (signed sessions, CSRF, templates, error pages); `web` assembles the routes."""
