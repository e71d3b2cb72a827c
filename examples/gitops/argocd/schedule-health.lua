-- Argo CD health check for databuild.dev/Schedule, in step with the Want check: a
-- status written for an older generation is not trusted; Stalled=True (an invalid
-- spec) is Degraded; Ready=True is Healthy, or Suspended while spec.suspend holds;
-- anything else (catching up on due ticks) is in progress.
local hs = {}
local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the DataBuild operator to observe generation " .. tostring(generation)
  return hs
end

local ready = nil
local stalled = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Stalled" and condition.status == "True" then
      stalled = condition
    end
  end
end
local why = stalled or ready
local message = "Waiting for the DataBuild operator"
if why ~= nil then
  message = (why.reason or "") .. ": " .. (why.message or "")
end
local suspended = ready ~= nil and ready.reason == "Suspended"
if status.nextTick ~= nil and not suspended then
  message = message .. " (next tick " .. status.nextTick .. ")"
end
hs.message = message

if stalled ~= nil then
  hs.status = "Degraded"
elseif suspended and ready.status == "True" then
  hs.status = "Suspended"
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
return hs
