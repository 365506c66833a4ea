-- wrk script for benchmarks/bench_service.py: POST /score_seller, one seller per request (taken in
-- turn from the file named by $IDS), 5 reasons; prints one JSON line of results at the end.
local ids = {}
for line in io.lines(os.getenv("IDS")) do ids[#ids + 1] = line end
local turn = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  turn = turn + 1
  return wrk.format(nil, nil, nil, '{"seller_id": "' .. ids[(turn % #ids) + 1] .. '", "reasons": 5}')
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "errors": %d, "seconds": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, e.status + e.connect + e.read + e.write + e.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
end
