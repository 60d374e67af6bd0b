-- 80% reads, 20% writes, deterministic (every fifth request is the POST): GET of
-- MESS_GET_PATH, POST of a small JSON request to MESS_POST_PATH. The same script drives
-- the server (GET one thread / create) and the fixture (GET /hello / POST /hello).
local get_path = os.getenv("MESS_GET_PATH")
local post_path = os.getenv("MESS_POST_PATH")
local body = '{"intent":"Check that the front door is locked","priority":"normal"}'
local get_req, post_req
local n = 0

function init(args)
  get_req = wrk.format("GET", get_path)
  wrk.headers["Content-Type"] = "application/json"
  post_req = wrk.format("POST", post_path, nil, body)
end

function request()
  n = n + 1
  if n % 5 == 0 then return post_req end
  return get_req
end
