-- POST /api/auth/refresh, each session walking its own rotation chain: a token leaves the
-- queue when sent and only its successor comes back, so no refresh token is ever sent twice.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local queue = {}
local head, tail = 1, 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   for _, token in ipairs(my_lines()) do
      tail = tail + 1
      queue[tail] = token
   end
end

function request()
   local token = "ktr_no_chain_left"
   if head <= tail then
      token = queue[head]
      queue[head] = nil
      head = head + 1
   end
   return wrk.format("POST", "/api/auth/refresh", headers, json_body('"refresh_token":"' .. token .. '"'))
end

function response(status, _, body)
   if status == 200 then
      local successor = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if successor then
         tail = tail + 1
         queue[tail] = successor
         return
      end
   else
      non2xx = non2xx + 1
   end
   lost = lost + 1
end
