"""The judge as a service on Ray Serve (``editjudge serve``).

* :mod:`editjudge.serve.inputs` — request limits, image decoding (base64, data URLs, paths under ``--allow-paths``),
  the 4xx reasons; no Ray, no torch.
* :mod:`editjudge.serve.schema` — the JSON API's pydantic models (validation and the OpenAPI schema).
* :mod:`editjudge.serve.worker` — one :class:`~editjudge.judge.Judge` scoring a dynamic batch (used by the Serve
  replicas and by the in-process benchmark).
* :mod:`editjudge.serve.metrics` — the Prometheus counters behind ``GET /metrics``.
* :mod:`editjudge.serve.app` — the FastAPI ingress and the judge deployment (``serve.batch``).
* :mod:`editjudge.serve.cli` — the ``editjudge serve`` verb.

The client lives in :mod:`editjudge.client`.
"""
