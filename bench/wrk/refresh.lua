-- wrk script: refresh-token requests, each with a refresh token never sent before.
--
--   BENCH_AUTH="Basic <base64 id:secret>" BENCH_TOKEN_FILE=tokens.txt BENCH_THREADS=1 \
--     wrk -t1 -c32 -d15s -s bench/wrk/refresh.lua http://127.0.0.1:PORT/token
--
-- BENCH_TOKEN_FILE (or the first argument after "--") holds one refresh token per line. With
-- several threads, thread i takes lines i, i+T, i+2T, ... (T = BENCH_THREADS), so no token is
-- ever sent twice: a second use would be refresh-token reuse, which a provider must punish.
-- When a thread runs out it stops and done() reports "exhausted" and the rate over the time it
-- really ran; mint more tokens than the run can use. See common.lua for the result line.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local auth = common.auth_header()
local headers = {
  ["Authorization"] = auth,
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Accept"] = "application/json",
}
local tokens = {}
local next_index = 1
local started_us = 0

function setup(thread)
  common.setup(thread)
end

function init(args)
  local path = args[1] or os.getenv("BENCH_TOKEN_FILE")
  if not path or path == "" then
    error("no token file: set BENCH_TOKEN_FILE or pass it after --")
  end
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local me = tonumber(tid or 0)
  if me >= nthreads then
    error("more wrk threads than BENCH_THREADS=" .. nthreads)
  end
  local line_no = 0
  for line in io.lines(path) do
    if line ~= "" then
      if line_no % nthreads == me then
        tokens[#tokens + 1] = common.url_encode(line)
      end
      line_no = line_no + 1
    end
  end
  if #tokens == 0 then
    error("no refresh tokens for thread " .. me .. " in " .. path)
  end
  started_us = common.now_us()
end

function request()
  local token = tokens[next_index]
  if token == nil then
    -- Out of tokens: stop this thread. wrk still wants a request; this one carries no token, is
    -- never answered before the loop stops, and so is not counted.
    if exhausted == 0 then
      exhausted = 1
      stopped_after_us = common.now_us() - started_us
      wrk.thread:stop()
    end
    return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=exhausted")
  end
  tokens[next_index] = false
  next_index = next_index + 1
  return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, _, body)
  common.check_response(status, body)
end

function done(summary, latency, _)
  common.done("refresh", summary, latency)
end
