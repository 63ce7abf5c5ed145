-- Shared by the workload scripts: this thread's share of a data file, counters, and one
-- JSON line from done() that bench/loadgen.py reads.
local threads = {}
local created = 0

function setup(thread)
   thread:set("thread_index", created)
   created = created + 1
   table.insert(threads, thread)
end

non2xx = 0
lost = 0

function my_lines()
   local path = os.getenv("BENCH_DATA")
   local count = tonumber(os.getenv("BENCH_THREADS"))
   local lines = {}
   local n = 0
   for line in io.lines(path) do
      if n % count == thread_index then
         table.insert(lines, line)
      end
      n = n + 1
   end
   return lines
end

function json_body(fields)
   return '{' .. fields .. '}'
end

function done(summary, latency, requests)
   local bad, dropped = 0, 0
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
      dropped = dropped + (thread:get("lost") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_s":%.6f,"errors":%d,"status_errors":%d,' ..
      '"non2xx_counted":%d,"lost_chains":%d,"p50_ms":%.4f,"p90_ms":%.4f,"p99_ms":%.4f,' ..
      '"max_ms":%.4f}\n',
      summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout,
      e.status, bad, dropped, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000))
end
