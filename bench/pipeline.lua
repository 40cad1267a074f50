-- bench/pipeline.lua -- HTTP/1.1 pipelining for wrk: every write carries
-- DEPTH requests back to back, and wrk reads DEPTH responses before the
-- connection writes again (the way TechEmpower's "plaintext" test drives a
-- server at depth 16).
--
--   wrk -t1 -c50 -d3s -s bench/pipeline.lua http://127.0.0.1:8080/plaintext -- 16
--
-- DEPTH is the first script argument (after "--"), default 16.  Each request
-- is what wrk sends by itself for the URL (wrk.format: method, path, Host and
-- any -H headers), so a pipelined run differs from a keep-alive one only in
-- how many requests share a write.  wrk counts every response as a request;
-- latency is taken per write, from the batch's write to each response.

local batch

function init(args)
    local depth = tonumber(args[1] or "") or 16
    if depth < 1 then
        depth = 1
    end
    local one = wrk.format(nil, wrk.path)
    batch = string.rep(one, depth)
end

function request()
    return batch
end
