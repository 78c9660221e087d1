-- wrk script: client-credentials token requests against the token endpoint given as wrk's URL.
--
--   BENCH_AUTH="Basic <base64 id:secret>" BENCH_SCOPE=api \
--     wrk -t1 -c32 -d15s -s bench/wrk/client_credentials.lua http://127.0.0.1:PORT/token
--
-- BENCH_SCOPE (default "api") is the scope asked for. See common.lua for the result line.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local scope = os.getenv("BENCH_SCOPE") or "api"

wrk.method = "POST"
wrk.headers["Authorization"] = common.auth_header()
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
wrk.body = "grant_type=client_credentials&scope=" .. common.url_encode(scope)

function setup(thread)
  common.setup(thread)
end

function response(status, _, body)
  common.check_response(status, body)
end

function done(summary, latency, _)
  common.done("client_credentials", summary, latency)
end
