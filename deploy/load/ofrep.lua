-- wrk script for deploy/load/wrk.sh: POST requests with realistic OpenFeature evaluation contexts.
--
--   MODE=bare         POST /bare                              (the reference handler)
--   MODE=single       POST /ofrep/v1/evaluate/flags/{key}      (a random flag of FLAGS_FILE)
--   MODE=bulk         POST /ofrep/v1/evaluate/flags            (bulk)
--   KEY=<SDK key>     sent as Authorization: Bearer (on every mode, so requests are the same size)
--   FLAGS_FILE=<path> one flag key per line (single)
--
-- Requests are pre-built in init (1,000 per thread) so the client spends its CPU on I/O, not Lua.

local mode = os.getenv("MODE") or "single"
local key = os.getenv("KEY") or ""
local flags_file = os.getenv("FLAGS_FILE")

local plans = { "free", "basic", "pro", "pro", "enterprise" }
local countries = { "NL", "US", "DE", "FR", "BR", "IN", "JP", "CA", "ES", "SE" }
local domains = { "example.com", "gmail.example", "corp.example.com", "staff.example.com", "mail.example.org" }
local versions = { "1.9.0", "2.3.1", "2.3.1", "3.1.0-beta.2", "3.2.0" }
local platforms = { "web", "web", "ios", "android" }
local orgs = { "acme", "globex", "initech", "umbrella", "hooli" }

local function pick(t) return t[math.random(#t)] end

local function context()
  local uid = math.random(0, 999999)
  local prefix = "user-"
  if math.random(50) == 1 then prefix = "qa-" end
  local beta = "false"
  if math.random(10) == 1 then beta = "true" end
  return string.format(
    '{"context":{"targetingKey":"%s%d","email":"u%d@%s","plan":"%s","country":"%s","app_version":"%s",' ..
    '"platform":"%s","org":"%s","age":%d,"beta":%s,"signup":"%04d-%02d-%02dT%02d:00:00Z"}}',
    prefix, uid, uid, pick(domains), pick(plans), pick(countries), pick(versions), pick(platforms),
    pick(orgs), math.random(18, 77), beta, math.random(2022, 2025), math.random(1, 12), math.random(1, 28),
    math.random(0, 23))
end

local requests = {}

function init(args)
  math.randomseed(os.time() + tonumber(string.match(tostring({}), "0x(%x+)") or "0", 16) % 100000)
  local flags = {}
  if mode == "single" then
    assert(flags_file, "FLAGS_FILE is required for MODE=single")
    for line in io.lines(flags_file) do
      if line ~= "" then flags[#flags + 1] = line end
    end
    assert(#flags > 0, "no flags in " .. flags_file)
  end
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key }
  for i = 1, 1000 do
    local path
    if mode == "bare" then
      path = "/bare"
    elseif mode == "single" then
      path = "/ofrep/v1/evaluate/flags/" .. flags[math.random(#flags)]
    else
      path = "/ofrep/v1/evaluate/flags"
    end
    requests[i] = wrk.format("POST", path, headers, context())
  end
end

function request()
  return requests[math.random(#requests)]
end
