-- bench/wrk-report.lua -- appended by bench/run to the script it gives wrk
-- (or used alone): when the run is over, one line of JSON on stdout with
-- what bench/run records -- requests (responses read), the measured time in
-- microseconds, bytes read, wrk's error counts (status: responses with a
-- status above 399; connect, read, write, timeout: socket errors) and the
-- latency percentiles in microseconds.

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
        '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50":%.1f,"p90":%.1f,' ..
        '"p99":%.1f,"p999":%.1f,"max":%.1f,"mean":%.1f}\n',
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
        e.status, e.timeout, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
