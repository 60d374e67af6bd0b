-- A static POST of a small JSON request (no Lua per request): the server's create and
-- the fixture's POST /hello use this same script. The path comes from wrk's URL; the
-- server's Authorization header from wrk -H.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"intent":"Check that the front door is locked","priority":"normal"}'
