-- wrk script of bench/slack_ack.py: every request is the next of the signed `/ticket new`
-- slash commands in the file SLACK_BENCH_BODIES (one per line: timestamp, signature, body,
-- tab-separated), signed beforehand with slack_sdk's SignatureVerifier under a fresh
-- timestamp. Run with one thread (-t1): each thread would send the same bodies.
-- `done` prints one JSON line: latency percentiles, counts, every non-200 answer, and how
-- many requests had to reuse a body because the file ran out (the runner fails on either);
-- and how many were refused as BUSY (a 200 with a body: Subdesk's backlog was full).

local path = os.getenv("SLACK_BENCH_BODIES")
local requests = {}
local total = 0
sent = 0
wrapped = 0
bad = 0
busy = 0
first_bad = ""

function init(args)
  for line in io.lines(path) do
    local ts, sig, body = line:match("^(%d+)\t(%S+)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", nil, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Slack-Request-Timestamp"] = ts,
      ["X-Slack-Signature"] = sig,
    }, body)
  end
  total = #requests
end

function request()
  sent = sent + 1
  if sent > total then
    wrapped = wrapped + 1
    return requests[(sent - 1) % total + 1]
  end
  return requests[sent]
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if first_bad == "" then first_bad = tostring(status) end
  elseif body ~= "" then
    busy = busy + 1
  end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local s, w, b, fb, z = 0, 0, 0, "", 0
  for _, thread in ipairs(threads) do
    s = s + thread:get("sent")
    w = w + thread:get("wrapped")
    b = b + thread:get("bad")
    z = z + thread:get("busy")
    if fb == "" then fb = thread:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    '\nBENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "sent": %d, "wrapped": %d, "bad": %d, "first_bad": "%s", ' ..
    '"busy": %d, "socket_errors": %d, "status_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, s, w, b, fb, z, e.connect + e.read + e.write + e.timeout, e.status))
end
