"""What a manager shows of itself; nothing here is called back by the data paths.

    counters    per-namespace counters of the slow paths (L2 calls, loads, invalidations, promotions)
    histogram   log-linear latency histograms
    metrics     Metrics: counters + histograms + L1 stats, snapshots over time, trends
    health      the 0-100 health assessment over a window of snapshots
    prometheus  the Prometheus collector and exposition (needs prometheus_client)
    hotkeys     the most read keys (a bounded sample of L2 reads)
    alerts      alert rules over the metrics, evaluated by a thread of the manager
    notify      where alert notifications go: the log, a webhook
"""
