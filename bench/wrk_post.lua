-- wrk script for bench_serving.py: POST one JSON body (by default a 1-row dataframe_split;
-- BENCH_SERVING_BODY, when set, replaces it), and print the exact figures as one JSON line
-- (prefixed WRKJSON) after wrk's own report.
-- The default body must stay the same as BODY in bench_serving.py (the script checks it).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_SERVING_BODY") or '{"dataframe_split": {"columns": ["text"], "data": [["hello"]]}}'
wrk.headers["Content-Type"] = "application/json"
-- BENCH_SERVING_AUTHORIZATION, when set, is sent as the Authorization header (bench_serving.py --auth)
if os.getenv("BENCH_SERVING_AUTHORIZATION") then
  wrk.headers["Authorization"] = os.getenv("BENCH_SERVING_AUTHORIZATION")
end

-- No response() callback: wrk would then call into Lua for every response, which costs the
-- load generator time. Non-2xx/3xx answers still show up in summary.errors.status.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, ' ..
    '"mean": %.1f, "stdev": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, latency.stdev))
end
