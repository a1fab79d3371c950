-- wrk script for bench/ca.py's OCSP measurement: cycles through a list of complete HTTP
-- requests (a file the benchmark writes: for each request, its length in decimal, a newline,
-- then its bytes) and prints one JSON line of results at the end.
--
--   wrk -t1 -c32 -d15s -s ocsp_wrk.lua http://127.0.0.1:PORT -- REQUESTS_FILE
--
-- Each wrk thread starts at another offset of the list. Statuses other than 2xx/3xx, socket
-- errors and timeouts are counted by wrk itself (summary.errors); answers are not parsed here
-- (bench/ca.py checks samples of each server's answers before and after the load).

local requests = {}
local index = 0
local offset = 0

function setup(thread)
  offset = offset + 7
  thread:set("start", offset)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local position = 1
  while position <= #data do
    local newline = string.find(data, "\n", position, true)
    local size = tonumber(string.sub(data, position, newline - 1))
    requests[#requests + 1] = string.sub(data, newline + 1, newline + size)
    position = newline + size + 1
  end
  index = (start or 0) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
