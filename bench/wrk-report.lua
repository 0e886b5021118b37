-- wrk script used by bench/run.ts: POSTs $BODY with $HDRS ("k: v|k: v") and prints one JSON line at the end.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local h = os.getenv("HDRS")
if h then for kv in string.gmatch(h, "[^|]+") do local k, v = kv:match("^%s*(.-):%s*(.-)%s*$"); if k then wrk.headers[k] = v end end end
local f = assert(io.open(os.getenv("BODY"), "r")); wrk.body = f:read("*a"); f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
