"""The HTTP scoring service: the BentoML service and its routes (`service`), the request schema
derived from the feature spec (`schema`), the front door every request passes (`guard`), the
coalescing of requests that arrive together (`coalesce`), and how `seller-risk serve` starts it
(`launch`)."""
