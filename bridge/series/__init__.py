"""Series: the store of metric families and their series (counters, gauges, histograms with native
buckets, summaries with their quantile windows), the TTL sweep and the reaper's index. Knows nothing of
mapping files or of how series are exposed."""
