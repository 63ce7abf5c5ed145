-- GET BENCH_PATH, one Bearer token per request from BENCH_DATA in turn (none when unset).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local prepared = {}
local turn = 0

function init(args)
   local path = os.getenv("BENCH_PATH")
   if os.getenv("BENCH_DATA") then
      for _, token in ipairs(my_lines()) do
         table.insert(prepared, wrk.format("GET", path, { Authorization = "Bearer " .. token }))
      end
   end
   if #prepared == 0 then
      table.insert(prepared, wrk.format("GET", path))
   end
end

function request()
   turn = turn % #prepared + 1
   return prepared[turn]
end
