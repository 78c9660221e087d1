-- Shared by client_credentials.lua and refresh.lua (loaded with dofile from the same directory).
--
-- Environment:
--   BENCH_AUTH     value of the Authorization header, e.g. "Basic YmVuY2g6c2VjcmV0" (required)
--   BENCH_THREADS  the -t given to wrk (refresh.lua splits the token file between threads)
--
-- Every response that is not HTTP 200 with an "access_token" in its body is an error: it is
-- counted, and the first one is kept to be shown. done() prints one line
--   BENCH_RESULT {"requests":..,"rps":..,"p50_ms":..,...}
-- for bench/run.py to read.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local common = {}

function common.now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

function common.auth_header()
  local auth = os.getenv("BENCH_AUTH")
  if not auth or auth == "" then
    error("BENCH_AUTH (the Authorization header value) is not set")
  end
  return auth
end

function common.url_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- Per-thread counters (each wrk thread has its own Lua state; done() reads them via thread:get).
non200 = 0
bad_body = 0
first_error = ""
exhausted = 0
stopped_after_us = 0

function common.check_response(status, body)
  if status ~= 200 then
    non200 = non200 + 1
  elseif not body or not body:find('"access_token"', 1, true) then
    bad_body = bad_body + 1
  else
    return
  end
  if first_error == "" then
    first_error = tostring(status) .. " " .. string.sub(body or "", 1, 300)
  end
end

-- Main Lua state: remember threads so that done() can add up their counters.
local threads = {}

function common.setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function common.done(scenario, summary, latency)
  local errors_non200, errors_body, exhausted_any, stopped = 0, 0, 0, 0
  local first = ""
  for _, thread in ipairs(threads) do
    errors_non200 = errors_non200 + (thread:get("non200") or 0)
    errors_body = errors_body + (thread:get("bad_body") or 0)
    if (thread:get("exhausted") or 0) > 0 then
      exhausted_any = 1
      stopped = math.max(stopped, thread:get("stopped_after_us") or 0)
    end
    local fe = thread:get("first_error") or ""
    if first == "" and fe ~= "" then
      first = fe
    end
  end
  -- wrk always reports the full -d as duration; a thread that ran out of refresh tokens stopped
  -- earlier, and its rate is over the time it really ran.
  local duration_us = summary.duration
  if exhausted_any == 1 and stopped > 0 then
    duration_us = stopped
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local ok = summary.requests - errors_non200 - errors_body
  local fields = {
    string.format('"scenario":%s', json_string(scenario)),
    string.format('"requests":%d', summary.requests),
    string.format('"ok":%d', ok),
    string.format('"duration_s":%.3f', duration_us / 1e6),
    string.format('"rps":%.1f', summary.requests / (duration_us / 1e6)),
    string.format('"ok_rps":%.1f', ok / (duration_us / 1e6)),
    string.format('"p50_ms":%.2f', latency:percentile(50) / 1000),
    string.format('"p90_ms":%.2f', latency:percentile(90) / 1000),
    string.format('"p99_ms":%.2f', latency:percentile(99) / 1000),
    string.format('"max_ms":%.2f', latency.max / 1000),
    string.format('"non200":%d', errors_non200),
    string.format('"bad_body":%d', errors_body),
    string.format('"socket_errors":%d', socket_errors),
    string.format('"timeouts":%d', e.timeout),
    string.format('"exhausted":%s', exhausted_any == 1 and "true" or "false"),
    string.format('"first_error":%s', json_string(first)),
  }
  io.write("BENCH_RESULT {" .. table.concat(fields, ",") .. "}\n")
end

return common
