-- wrk script for bench-hit.sh: every request picks a random object from a URL
-- list and, in "range" mode, a random byte range of it.
--
--   wrk ... -s wrk-audio.lua http://host:port -- URLS MODE [RANGE_LEN] [ALIGN]
--
-- URLS:      file of lines "<object size> <path?query>" (signed edge URLs;
--            nginx gets the very same request lines and ignores the query)
-- MODE:      "range" (Range: bytes=o-(o+RANGE_LEN-1), o uniform in the object)
--            or "whole" (no Range header: the whole object)
-- RANGE_LEN: bytes per range, default 65536
-- ALIGN:     1 = offsets are multiples of RANGE_LEN, 0 = any byte (default)
--
-- done() prints one machine-readable line:
--   RESULT requests=.. duration_s=.. bytes=.. rps=.. mibps=.. p50_ms=.. p99_ms=.. max_ms=.. errors=..

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
   table.insert(threads, thread)
end

local paths, sizes = {}, {}
local mode, range_len, align

function init(args)
   local file = args[1] or error("wrk-audio.lua: pass the URL list file after --")
   local f = assert(io.open(file, "r"))
   for line in f:lines() do
      local size, path = line:match("^(%d+)%s+(%S+)$")
      if size then
         paths[#paths + 1] = path
         sizes[#sizes + 1] = tonumber(size)
      end
   end
   f:close()
   assert(#paths > 0, "wrk-audio.lua: no URLs in " .. file)
   mode = args[2] or "range"
   range_len = tonumber(args[3] or "65536")
   align = (args[4] or "0") == "1"
   assert(mode == "range" or mode == "whole", "wrk-audio.lua: mode must be range or whole")
   -- Distinct stream per thread and per run.
   math.randomseed(os.time() * 1009 + (thread_id or 0) * 7919 + math.floor(os.clock() * 1e6))
end

function request()
   local i = math.random(#paths)
   if mode == "whole" then
      return wrk.format("GET", paths[i])
   end
   local o = math.random(0, sizes[i] - range_len)
   if align then
      o = o - o % range_len
   end
   return wrk.format("GET", paths[i], { Range = "bytes=" .. o .. "-" .. (o + range_len - 1) })
end

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   local errors = e.connect + e.read + e.write + e.status + e.timeout
   io.write(string.format(
      "RESULT requests=%d duration_s=%.3f bytes=%d rps=%.1f mibps=%.2f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
         .. "errors=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
      summary.requests, secs, summary.bytes, summary.requests / secs, summary.bytes / secs / 1048576,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, errors, e.connect, e.read, e.write, e.status, e.timeout))
end
