-- POST /api/loans with a new borrower id on every request (thread number + counter), amounts and currencies
-- varying, no Idempotency-Key (the plain create path).
local counter = 0
local n = 0
local currencies = { "KES", "INR", "NGN", "VND", "PHP", "GHS", "UGX", "TZS" }
local run = os.getenv("BENCH_RUN_ID") or "0"

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function request()
  n = n + 1
  local body = string.format(
    '{"borrower_id":"bench_%s_%d_%d","amount":%d.%02d,"currency":"%s","term_months":%d,"interest_rate_apr":%d.50}',
    run, tid or 0, n, 100 + (n * 37) % 49000, n % 100, currencies[n % #currencies + 1], 1 + n % 24, 10 + n % 30)
  local headers = { ["Content-Type"] = "application/json" }
  -- wrk.format does not merge wrk.headers into the headers it is given.
  if close_mode then headers["Connection"] = "close" end
  return wrk.format("POST", "/api/loans", headers, body)
end
