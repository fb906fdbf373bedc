-- wrk script for bench/web.sh: every request is a GET of BENCH_PATH signed in as the next
-- of the payers whose session tokens are in BENCH_SESSIONS (one a line), so the load comes
-- from that many payers at once; each thread starts at its own place in the list. Answers
-- other than 200 (a session refused sends to /sign-in with 303) are counted, and done()
-- prints one line of figures for bench/web.sh.
local threads = {}

function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end

function init(args)
    sessions = {}
    for line in io.lines(os.getenv("BENCH_SESSIONS")) do
        sessions[#sessions + 1] = line
    end
    path = os.getenv("BENCH_PATH") or "/invoices"
    cookie = os.getenv("BENCH_COOKIE") or "ml_session"
    index = (id * 97) % #sessions
    bad = 0
end

-- BENCH_THINK_MS: each connection waits this long (uniformly 50% to 150% of it) before its
-- next request, as a payer reads a page before the next click; 0 (the default) sends the
-- next request as soon as the answer is in, which measures what the service can take.
local think = tonumber(os.getenv("BENCH_THINK_MS") or "0")

function delay()
    if think <= 0 then
        return 0
    end
    return math.floor(think * (0.5 + math.random()))
end

function request()
    index = index % #sessions + 1
    return wrk.format("GET", path, { ["Cookie"] = cookie .. "=" .. sessions[index] })
end

function response(status, headers, body)
    if status ~= 200 then
        bad = bad + 1
    end
end

function done(summary, latency, requests)
    local not_ok = 0
    for _, thread in ipairs(threads) do
        not_ok = not_ok + thread:get("bad")
    end
    local errors = summary.errors
    io.write(string.format(
        "BENCH requests=%d rate=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f not_200=%d socket_errors=%d\n",
        summary.requests, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency.max / 1000, not_ok,
        errors.connect + errors.read + errors.write + errors.timeout))
end
