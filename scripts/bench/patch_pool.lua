-- Each request a PATCH on a thread never used before in this run: every wrk thread reads
-- the refs file (MESS_REFS, one ref per line) and takes a disjoint slice of it (line i
-- goes to wrk thread i mod MESS_WRK_THREADS). MESS_PREFIX is the path before the ref,
-- MESS_BODY the JSON body. When a thread's slice runs out it stops (wrk then reports the
-- rate over the time actually run) and "POOL EXHAUSTED" is printed.
local prefix = os.getenv("MESS_PREFIX")
local body = os.getenv("MESS_BODY")
local refs_file = os.getenv("MESS_REFS")
local nthreads = tonumber(os.getenv("MESS_WRK_THREADS") or "2")

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  refs = {}
  local i = 0
  for line in io.lines(refs_file) do
    if line ~= "" then
      if i % nthreads == id then refs[#refs + 1] = line end
      i = i + 1
    end
  end
  idx = 0
  exhausted = 0
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  idx = idx + 1
  local r = refs[idx]
  if r == nil then
    exhausted = 1
    wrk.thread:stop()
    return wrk.format("GET", "/health")
  end
  return wrk.format("PATCH", prefix .. r, nil, body)
end

function done(summary, latency, requests)
  local ex = 0
  for _, t in ipairs(threads) do ex = ex + (t:get("exhausted") or 0) end
  if ex > 0 then io.write("POOL EXHAUSTED\n") end
end
