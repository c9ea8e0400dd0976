"""Serve stage: ``nbtk serve`` answers scoring requests from a verified bundle.

::

    protocol.py  MLflow's scoring inputs -> a frame checked against signature.json (400 names the column)
    models.py    resolve MODEL@ALIAS / MODEL@VERSION / path, verify and load the bundle, call the model
    routing.py   live canary: deterministic key bucketing, plan steps, SLA halt
    predlog.py   batched prediction-log writer thread (flushed on clean shutdown)
    metrics.py   Prometheus counters and latency histogram (GET /metrics)
    service.py   answer a request: route, call, fall back to the champion, log, count
    control.py   follow alias moves, flags and labels; roll the alias back after a halt
    app.py       Starlette app + uvicorn runner
    launch.py    prepare()/serve(): what ``nbtk serve`` calls
"""
