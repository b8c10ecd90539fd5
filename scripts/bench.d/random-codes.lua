-- wrk script (scripts/bench): GET /<prefix><k> for k drawn uniformly from 1..n.
-- Usage: wrk ... -s random-codes.lua URL -- PREFIX N
-- Requests are built once in init(); request() only picks one.
local requests = {}
local n = 0

function init(args)
  local prefix = args[1] or "b"
  n = tonumber(args[2] or "10000")
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  for k = 1, n do
    requests[k] = wrk.format("GET", "/" .. prefix .. k)
  end
end

function request()
  return requests[math.random(n)]
end
