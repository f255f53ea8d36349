-- wrk script for bench/run.py: GET with "Authorization: Bearer <token>", cycling through a file
-- of tokens (one a line), and a JSON summary on the last line of the output.
--
--   wrk -t1 -c32 -d5s -s bench/wrk_tokens.lua http://127.0.0.1:PORT/products -- FILE OFFSET
--
-- FILE "-" sends no Authorization header. OFFSET is the index (0-based) of the first token, so
-- consecutive runs continue the cycle instead of restarting it (with more tokens than the
-- verifier's cache holds, a cyclic scan misses the LRU cache on every request). Run with one
-- thread (-t1): every thread would start at the same OFFSET.

local tokens = {}
local offset = 0
local threads = {}
count = 0 -- global: read back from each thread in done()

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  offset = tonumber(args[2] or "0") or 0
  if path ~= nil and path ~= "-" then
    for line in io.lines(path) do
      if #line > 0 then
        tokens[#tokens + 1] = line
      end
    end
  end
end

function request()
  local n = #tokens
  count = count + 1
  if n == 0 then
    return wrk.format("GET")
  end
  local token = tokens[((offset + count - 1) % n) + 1]
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
end

function done(summary, latency, requests)
  local issued = 0
  for _, thread in ipairs(threads) do
    issued = issued + thread:get("count")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "issued": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes, issued,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max
  ))
end
