-- wrk script: POST /predict with the JSON bodies in $HFX_BODIES (one per line), in turn, and stop each
-- thread after $HFX_MAX_REQUESTS responses, so a run is bounded in requests as well as in seconds. With
-- $HFX_API_KEY set, every request carries it, as a production client's does.
local headers = {["Content-Type"] = "application/json"}
if os.getenv("HFX_API_KEY") then headers["Authorization"] = "Bearer " .. os.getenv("HFX_API_KEY") end
local bodies = {}
for line in io.lines(os.getenv("HFX_BODIES")) do bodies[#bodies + 1] = line end
local limit = tonumber(os.getenv("HFX_MAX_REQUESTS") or "0")
local i, done = 0, 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/predict", headers, bodies[i])
end
response = function()
  done = done + 1
  if limit > 0 and done >= limit then wrk.thread:stop() end
end
