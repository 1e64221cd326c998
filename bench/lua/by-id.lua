-- GET /api/loans/:id rotating over existing ids (one per line in BENCH_IDS_FILE), each thread from its own
-- starting point, so the database reads different rows rather than one hot row.
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
  if #line > 0 then ids[#ids + 1] = line end
end
local counter = 0
local i = 1

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  i = ((tid or 1) * 7919) % #ids + 1
end

function request()
  i = i % #ids + 1
  return wrk.format("GET", "/api/loans/" .. ids[i])
end
