-- The soak's mix, per thread: 35 % get-by-id, 25 % first page, 10 % deep page, 10 % stats, 15 % create, 5 % a
-- status change of a loan this thread created (pending → approved/rejected → disbursed → repaid/defaulted).
-- Responses are matched to their request by the X-Request-Id the service echoes, so every PATCH is a legal
-- transition: any non-2xx is a real error.
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
  if #line > 0 then ids[#ids + 1] = line end
end
local deep = os.getenv("BENCH_DEEP_PATH")
local counter = 0
local n = 0
local pending, approved, disbursed = {}, {}, {}
local currencies = { "KES", "INR", "NGN", "VND", "PHP", "GHS" }

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  math.randomseed((tid or 1) * 7919)
end

local function pop(q)
  local v = q[#q]
  q[#q] = nil
  return v
end

local function get(path, rid)
  return wrk.format("GET", path, { ["X-Request-Id"] = rid })
end

local function patch(id, status, rid)
  return wrk.format("PATCH", "/api/loans/" .. id,
    { ["Content-Type"] = "application/json", ["X-Request-Id"] = "soak-p-" .. rid },
    '{"status":"' .. status .. '"}')
end

function request()
  n = n + 1
  local rid = (tid or 0) .. "-" .. n
  local r = math.random(100)
  if r <= 5 then
    local id = pop(disbursed)
    if id then return patch(id, (n % 5 == 0) and "defaulted" or "repaid", rid) end
    id = pop(approved)
    if id then return patch(id, "disbursed", rid) end
    id = pop(pending)
    if id then return patch(id, (n % 4 == 0) and "rejected" or "approved", rid) end
  end
  if r <= 20 then
    local body = string.format(
      '{"borrower_id":"soak_%d_%d","amount":%d.%02d,"currency":"%s","term_months":%d,"interest_rate_apr":%d.25}',
      tid or 0, n, 100 + (n * 37) % 49000, n % 100, currencies[n % #currencies + 1], 1 + n % 24, 10 + n % 30)
    return wrk.format("POST", "/api/loans",
      { ["Content-Type"] = "application/json", ["X-Request-Id"] = "soak-c-" .. rid }, body)
  elseif r <= 30 then
    return get("/api/stats", "soak-s-" .. rid)
  elseif r <= 40 then
    return get(deep, "soak-d-" .. rid)
  elseif r <= 65 then
    return get("/api/loans?limit=20", "soak-l-" .. rid)
  else
    return get("/api/loans/" .. ids[math.random(#ids)], "soak-g-" .. rid)
  end
end

function response(status, headers, body)
  local rid = headers["X-Request-Id"] or headers["x-request-id"] or ""
  local kind = string.sub(rid, 1, 7)
  if kind == "soak-c-" and status == 201 then
    local id = string.match(body, '"id":"([0-9a-f%-]+)"')
    if id then pending[#pending + 1] = id end
  elseif kind == "soak-p-" and status == 200 then
    local id = string.match(body, '"id":"([0-9a-f%-]+)"')
    local s = string.match(body, '"status":"(%a+)"')
    if id and s == "approved" then approved[#approved + 1] = id end
    if id and s == "disbursed" then disbursed[#disbursed + 1] = id end
  end
end
