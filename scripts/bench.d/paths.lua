-- wrk script (scripts/bench): GET a path drawn uniformly from a file of paths,
-- one per line (the edge cases: a sample of the exported codes).
-- Usage: wrk ... -s paths.lua URL -- FILE
-- Requests are built once in init(); request() only picks one, so wrk does
-- the same work per request whatever answers it (the nginx baseline ignores
-- the path).
local requests = {}
local n = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  for path in file:lines() do
    if path ~= "" then
      n = n + 1
      requests[n] = wrk.format("GET", path)
    end
  end
  file:close()
  assert(n > 0, "no paths in " .. args[1])
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  return requests[math.random(n)]
end
