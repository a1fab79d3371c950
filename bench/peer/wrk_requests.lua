-- wrk script for bench/ca.py: sends a prepared list of complete HTTP requests in order (a
-- file the benchmark writes: for each request, its length in decimal, a newline, then its
-- bytes), starting at a given index and cycling round, and prints one JSON line of results.
--
--   wrk -t1 -c32 -d15s -s wrk_requests.lua http://127.0.0.1:PORT -- REQUESTS_FILE [START]
--
-- The benchmark runs it with one thread, so the list is walked once in order: issuance sends
-- each request (a fresh key) once and passes START to continue after the warm-up; OCSP cycles
-- through its list. Statuses other than 2xx/3xx, socket errors and timeouts are counted by wrk
-- itself (summary.errors); answers are not parsed here (bench/ca.py checks samples of each
-- server's answers, and the certificates stored, itself).

local requests = {}
local index = 0

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
  index = tonumber(args[2] or "0") % #requests
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
