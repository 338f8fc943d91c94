-- wrk script for the memory run: stop sending after BENCH_REQUESTS responses. (wrk itself then
-- idles until its duration ends; bench.py stops it once Envoy has served the requests.)
local target = tonumber(os.getenv("BENCH_REQUESTS") or "1000")
local n = 0
function response(status, headers, body)
  n = n + 1
  if n >= target then wrk.thread:stop() end
end
