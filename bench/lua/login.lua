-- POST /api/auth/login with BENCH_DATA's "email<TAB>password" lines in turn.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local prepared = {}
local turn = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   for _, line in ipairs(my_lines()) do
      local email, password = line:match("^([^\t]+)\t(.+)$")
      table.insert(prepared, wrk.format("POST", "/api/auth/login", headers,
         json_body('"email":"' .. email .. '","password":"' .. password .. '"')))
   end
end

function request()
   turn = turn % #prepared + 1
   return prepared[turn]
end

function response(status, _, _)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end
