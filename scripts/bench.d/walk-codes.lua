-- wrk script (scripts/bench): requests GET /<prefix><%0Wd of i> once for every
-- i in 0..n-1, in order, then stops the thread once all n were answered.
-- Usage: wrk -t1 ... -s walk-codes.lua URL -- PREFIX N WIDTH (one thread only)
-- Connections that ask for more after the n codes are sent get /healthz
-- (answered 200) so they are told apart from the walk's answers; the walk's
-- answers with a status other than 307 are counted in `bad`.
local prefix, n, fmt
local next_i = 0
local answered = 0
bad = 0
local filler

function init(args)
  prefix = args[1]
  n = tonumber(args[2])
  fmt = "/" .. prefix .. "%0" .. args[3] .. "d"
  filler = wrk.format("GET", "/healthz")
end

-- wrk calls request() once before the run to check the script (in thread 1's
-- state): that call must not use up a code.
local verified = false

function request()
  if not verified then
    verified = true
    return wrk.format("GET", string.format(fmt, 0))
  end
  if next_i < n then
    local path = string.format(fmt, next_i)
    next_i = next_i + 1
    return wrk.format("GET", path)
  end
  return filler
end

function response(status, headers, body)
  if status == 200 then return end
  answered = answered + 1
  if status ~= 307 then bad = bad + 1 end
  if answered >= n then
    wrk.thread:stop()
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + (t:get("bad") or 0)
  end
  io.write(string.format("walk_bad=%d\n", total_bad))
end
